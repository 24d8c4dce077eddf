"""Training add-on: from an audit report to a staged Keras 3 recipe with verdicts."""

import os
import sys
import warnings

# TensorFlow 2.21's oneDNN custom CPU kernels corrupt the heap while training the
# Xception stages on this project's inputs (measured: "double free or corruption",
# "munmap_chunk(): invalid pointer" inside the train step; gone with them off). The
# setting is read when TensorFlow is first imported, so it is made here, before any
# train module imports it; set TF_ENABLE_ONEDNN_OPTS=1 yourself to opt back in.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
if "tensorflow" in sys.modules and os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0":
    warnings.warn(
        "tensorflow was imported before train: its oneDNN kernels may be on "
        "(see train/__init__.py); "
        "set TF_ENABLE_ONEDNN_OPTS=0 before importing tensorflow",
        RuntimeWarning,
        stacklevel=2,
    )
