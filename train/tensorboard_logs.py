"""TensorBoard logs of a run: RUN/tensorboard/<run label>/, read by `tensorboard --logdir RUN`.

Written through TensorFlow's summary writer (tf.summary.create_file_writer and
tf.summary.write) with TensorBoard's own plugin metadata, so the logs are written whether
or not the tensorboard package is installed: TensorFlow 2.21's tf.summary.scalar, histogram
and image are TensorBoard's code and raise TBNotInstalledError without it, while
tf.summary.write is TensorFlow's. What is written, per training run:

* scalars: every metric Keras logs (loss, accuracy, val_loss, val_accuracy, the learning
  rate when a schedule logs it), after every evaluation, at its optimisation step;
* histograms: the first layer's kernel at the start and after every evaluation;
* images: the stage's batch preview (the training batch and a validation batch as the run
  sees them), written when the stage's folder is.

No service is started: viewing needs `pip install tensorboard`, then
`tensorboard --logdir RUN`.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

# Buckets of a histogram (TensorBoard's own default for tf.summary.histogram).
HISTOGRAM_BUCKETS = 30
# Images of each preview batch written (TensorBoard shows one at a time with a slider).
PREVIEW_IMAGES = 8
INSTALL_HINT = "pip install tensorboard"


def log_folder(run_path: Path, label: str) -> Path:
    """RUN/tensorboard/<label>, the label made a safe folder name ("tuning trial1" ->
    "tuning_trial1"): one folder per training run, so TensorBoard shows each as a run."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._") or "run"
    return Path(run_path) / "tensorboard" / name


def tensorboard_installed() -> bool:
    """Whether the tensorboard package (the viewer) can be imported here."""
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def view_hint(run_path: Path) -> str:
    """The line saying how to view the logs (and how to get the viewer when it is missing)."""
    command = f"tensorboard --logdir {run_path}"
    if tensorboard_installed():
        return f"TensorBoard logs: {Path(run_path) / 'tensorboard'} (view: {command})"
    return (
        f"TensorBoard logs: {Path(run_path) / 'tensorboard'} (view: {command}; "
        f"TensorBoard is not installed here: {INSTALL_HINT})"
    )


def _metadata(plugin: str, data_class: int, description: str = ""):
    from tensorflow.core.framework import summary_pb2

    return summary_pb2.SummaryMetadata(
        summary_description=description,
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin, content=b""),
        data_class=data_class,
    )


def scalar(tag: str, value: float, step: int) -> None:
    """One scalar, in TensorBoard's scalars-plugin format, to the default writer."""
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    tf.summary.write(
        tag,
        tf.constant(float(value), dtype=tf.float32),
        step=step,
        metadata=_metadata("scalars", summary_pb2.DATA_CLASS_SCALAR),
    )


def histogram_buckets(values: np.ndarray, buckets: int = HISTOGRAM_BUCKETS) -> np.ndarray:
    """(buckets, 3) float64: left edge, right edge, count (TensorBoard's histogram tensor);
    a constant array is one bucket around its value."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size == 0:
        return np.zeros((0, 3))
    low, high = float(values.min()), float(values.max())
    if low == high:
        return np.array([[low - 0.5, high + 0.5, float(values.size)]])
    counts, edges = np.histogram(values, bins=buckets, range=(low, high))
    return np.stack([edges[:-1], edges[1:], counts.astype(np.float64)], axis=1)


def histogram(tag: str, values: np.ndarray, step: int) -> None:
    """One histogram, in TensorBoard's histograms-plugin format, to the default writer."""
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    tf.summary.write(
        tag,
        tf.constant(histogram_buckets(values), dtype=tf.float64),
        step=step,
        metadata=_metadata("histograms", summary_pb2.DATA_CLASS_TENSOR),
    )


def images(tag: str, batch: np.ndarray, step: int, description: str = "") -> None:
    """Images (n, height, width, 3; 0..255) as PNGs, in TensorBoard's images-plugin format."""
    import tensorflow as tf
    from PIL import Image
    from tensorflow.core.framework import summary_pb2

    batch = np.clip(np.asarray(batch, dtype=np.float32), 0, 255).astype(np.uint8)
    encoded = []
    for picture in batch:
        buffer = io.BytesIO()
        Image.fromarray(picture).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    height, width = (batch.shape[1], batch.shape[2]) if batch.size else (0, 0)
    tf.summary.write(
        tag,
        tf.constant([str(width).encode(), str(height).encode(), *encoded], dtype=tf.string),
        step=step,
        metadata=_metadata("images", summary_pb2.DATA_CLASS_BLOB_SEQUENCE, description),
    )


def write_preview(run_path: Path, label: str, preview: dict) -> Path:
    """The stage's batch preview (train.stages.Context.preview) as two image summaries,
    "preview/train" and "preview/validation", at step 0 of the stage's log folder."""
    import tensorflow as tf

    folder = log_folder(run_path, label)
    writer = tf.summary.create_file_writer(str(folder))
    with writer.as_default():
        for part in ("train", "validation"):
            pictures, labels = preview[part]
            names = preview["class_names"]
            shown = np.asarray(labels).reshape(len(pictures), -1)[:PREVIEW_IMAGES, 0].astype(int)
            images(
                f"preview/{part}",
                pictures[:PREVIEW_IMAGES],
                0,
                description="labels: " + ", ".join(str(names[index]) for index in shown),
            )
    writer.close()
    return folder


def callback(run_path: Path, label: str, steps_per_evaluation: int):
    """A Keras callback writing the run's scalars after every evaluation and the first layer's
    kernel histogram at the start (of this fit: a resumed run starts later) and after every
    evaluation, to RUN/tensorboard/<label>.
    Reads logs and weights only: no random draw, so runs stay reproducible."""
    import keras
    import tensorflow as tf

    from train.models import first_conv_kernel

    folder = log_folder(run_path, label)

    class EvaluationLog(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.writer = tf.summary.create_file_writer(str(folder))
            self.first = True

        def on_epoch_begin(self, epoch, logs=None):
            # The starting kernel at the step the fit starts from: 0, or the last finished
            # evaluation's step when a checkpointed run resumes (model.fit's initial_epoch).
            if self.first:
                self.first = False
                self._kernel(epoch * steps_per_evaluation)

        def _kernel(self, step: int) -> None:
            kernel = first_conv_kernel(self.model)
            if kernel is not None:
                with self.writer.as_default():
                    histogram("first_layer/kernel", kernel, step)

        def on_epoch_end(self, epoch, logs=None):
            step = (epoch + 1) * steps_per_evaluation
            with self.writer.as_default():
                for key, value in (logs or {}).items():
                    try:
                        scalar(f"evaluation/{key}", float(value), step)
                    except (TypeError, ValueError):
                        continue  # a non-numeric log entry is no scalar
            self._kernel(step)
            self.writer.flush()

        def on_train_end(self, logs=None):
            self.writer.close()

    return EvaluationLog()
