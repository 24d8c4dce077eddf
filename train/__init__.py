"""Training add-on: from an audit report to a staged Keras 3 recipe with verdicts."""
