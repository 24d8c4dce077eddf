"""Checkpoints of training runs, so an interrupted run (Ctrl-C, SIGKILL) resumes exactly.

Every training run of a recipe (Context.fit, by its label: "baseline", "capacity", a chain
stage's name, "tuning trial2" ...) writes RUN/checkpoints/<label>-<hash>.npz after each
evaluation, and once more when it ends ("final"). One file holds everything the rest of the run
depends on:

* every model variable, the random-seed state of Dropout's SeedGenerator included
  (keras.Model.variables; .weights leaves the seed state out), BatchNorm's moving statistics;
* every optimizer variable: the step count, the learning rate (ReduceLROnPlateau changes it),
  Adam's moments;
* the callbacks' state: EarlyStopping (wait, best, best epoch, stopped epoch, best weights),
  ReduceLROnPlateau (wait, best, cooldown), the fixed-batch predictions so far;
* the history so far and the number of finished evaluations.

One file, written to a temporary name, flushed to disk and renamed over the old one: a kill
during the write leaves the previous checkpoint (or none), never a half-written one. A .keras
file holds the model and optimizer but not the seed state nor the callbacks, and a pair of files
cannot be replaced in one atomic step.

On resume, the run rebuilds its pipeline with the same random seed and skips the batches the
finished evaluations consumed (the shuffle order, and the augmentation layers' random state,
which advances as the skipped batches pass through the tf.data map, come out as before), loads
the variables and continues with `initial_epoch`. A run whose final checkpoint exists is not
trained again: its model and history are loaded (what later stages need from finished ones).
A checkpoint made by another setup (its fingerprint differs: steps, evaluations, model, learning
rate, callbacks) is ignored and the run starts from its beginning, with a log line.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

import keras
import numpy as np

from audit.reportio import atomic_file

# Callback attributes that make up its state (restored after on_train_begin resets them).
CALLBACK_STATE = {
    "EarlyStopping": ("wait", "best", "best_epoch", "stopped_epoch"),
    "ReduceLROnPlateau": ("wait", "best", "cooldown_counter"),
}


def _plain(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value


def _unplain(value: Any) -> Any:
    if value in ("inf", "-inf", "nan"):
        return float(value)
    return value


class Checkpoints:
    """RUN/checkpoints/: one file per training run (see the module's docstring)."""

    def __init__(self, folder: str | os.PathLike, log=print):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log = log
        # Temporary files of a process killed while writing (the run folder's lock, held by
        # train.runs.RunStore, keeps any other writer out).
        for stale in self.folder.glob(".*.npz*.tmp"):
            stale.unlink(missing_ok=True)

    def path(self, label: str) -> Path:
        """The checkpoint file of the run called label."""
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", label)[:60]
        digest = hashlib.sha256(label.encode("utf-8", "surrogateescape")).hexdigest()[:10]
        return self.folder / f"{safe}-{digest}.npz"

    def _clear(self, target: Path) -> bool:
        """Remove what stands at a checkpoint's name and is no file nor link (a folder, a
        FIFO: a rename over a folder fails, and np.load would block on a FIFO); the folder is
        the run's own (RUN/checkpoints). True when something was removed (logged)."""
        if target.is_symlink() or not target.exists() or target.is_file():
            return False
        self.log(f"checkpoint {target.name} is no file; training from the start")
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()
        return True

    def save(self, label: str, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        """Write the checkpoint atomically (temporary file, fsync, rename)."""
        target = self.path(label)
        self._clear(target)
        with atomic_file(target, binary=True, sync=True) as handle:
            payload: dict[str, Any] = {"meta": np.asarray(json.dumps(meta)), **arrays}
            np.savez(handle, **payload)

    def load(self, label: str) -> tuple[dict, dict[str, np.ndarray]] | None:
        """(meta, arrays) of the run's checkpoint, or None when there is none (or it does not
        read: it is then ignored and the run starts over)."""
        target = self.path(label)
        if self._clear(target):
            return None
        if not target.is_file():
            return None
        try:
            with np.load(target, allow_pickle=False) as stored:
                arrays = {key: stored[key] for key in stored.files}
            meta = json.loads(str(arrays.pop("meta")))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            self.log(f"checkpoint {target.name} does not read ({error}); training from the start")
            return None
        return meta, arrays

    def fit(
        self,
        model: keras.Model,
        label: str,
        train,
        validation,
        rounds: int,
        per_round: int,
        callbacks: list,
        setup: dict | None = None,
    ) -> dict[str, list[float]]:
        """model.fit with a checkpoint after every evaluation, resumed from the last one;
        setup: what else makes the run (its pipeline: size, batch, augmentation, the training
        images), part of the fingerprint."""
        fingerprint = {
            **(setup or {}),
            "label": label,
            "rounds": rounds,
            "per_round": per_round,
            "model": model.name,
            "parameters": int(model.count_params()),
            "optimizer": type(model.optimizer).__name__,
            "learning_rate": float(model.optimizer.learning_rate),
            "callbacks": [type(callback).__name__ for callback in callbacks],
        }
        history: dict[str, list[float]] = {}
        done, stopped, final = 0, False, False
        stored = self.load(label)
        if stored is not None and stored[0].get("fingerprint") != fingerprint:
            self.log(f"[{label}] checkpoint made by another setup; training from the start")
            stored = None
        if stored is not None:
            meta, arrays = stored
            restore(model, arrays)
            history = meta["history"]
            done, stopped, final = meta["done"], meta["stopped"], meta["final"]
            restore_callbacks(callbacks, meta["callbacks"], arrays)
            self.log(
                f"[{label}] resumed after evaluation {done}/{rounds}"
                + (" (finished)" if final else "")
            )
        if final:
            return {key: [float(value) for value in values] for key, values in history.items()}
        saver = Saver(self, label, fingerprint, callbacks, history, model, done)
        if not stopped and done < rounds:
            model.fit(
                train.skip(done * per_round),
                validation_data=validation,
                initial_epoch=done,
                epochs=rounds,
                steps_per_epoch=per_round,
                shuffle=False,
                verbose=0,
                callbacks=[*callbacks, Restorer(callbacks, stored), saver],
            )
        else:  # stopped early after its last checkpoint: end as fit would have
            for callback in callbacks:
                if isinstance(callback, keras.callbacks.EarlyStopping):
                    callback.set_model(model)
                    callback.on_train_end()
        saver.write(final=True)
        return {key: [float(value) for value in values] for key, values in history.items()}


def variables_of(model: keras.Model) -> dict[str, np.ndarray]:
    """The model's and its optimizer's variables as arrays (m0.., o0..)."""
    arrays = {f"m{index}": np.asarray(v.numpy()) for index, v in enumerate(model.variables)}
    if model.optimizer is not None and model.optimizer.built:
        arrays |= {
            f"o{index}": np.asarray(v.numpy()) for index, v in enumerate(model.optimizer.variables)
        }
    return arrays


def restore(model: keras.Model, arrays: dict[str, np.ndarray]) -> None:
    """Assign the stored model and optimizer variables (building the optimizer first)."""
    for index, variable in enumerate(model.variables):
        variable.assign(arrays[f"m{index}"])
    if "o0" in arrays:
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        for index, variable in enumerate(model.optimizer.variables):
            variable.assign(arrays[f"o{index}"])


def callback_state(callbacks: list) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Each callback's state (CALLBACK_STATE attributes, EarlyStopping's best weights, the
    fixed-batch probabilities) as JSON and arrays."""
    states: list[dict] = []
    arrays: dict[str, np.ndarray] = {}
    for index, callback in enumerate(callbacks):
        name = type(callback).__name__
        state = {key: _plain(getattr(callback, key, None)) for key in CALLBACK_STATE.get(name, ())}
        best = getattr(callback, "best_weights", None)
        if isinstance(callback, keras.callbacks.EarlyStopping) and best is not None:
            state["best_weights"] = len(best)
            arrays |= {f"c{index}_w{number}": np.asarray(w) for number, w in enumerate(best)}
        probabilities = getattr(callback, "probabilities", None)
        if isinstance(probabilities, list):
            state["probabilities"] = len(probabilities)
            arrays |= {f"c{index}_p{number}": p for number, p in enumerate(probabilities)}
        states.append(state)
    return states, arrays


def restore_callbacks(callbacks: list, states: list[dict], arrays: dict[str, np.ndarray]) -> None:
    """Put back what callback_state stored (see Restorer for the attributes that
    on_train_begin resets)."""
    for index, (callback, state) in enumerate(zip(callbacks, states, strict=True)):
        for key in CALLBACK_STATE.get(type(callback).__name__, ()):
            setattr(callback, key, _unplain(state.get(key)))
        if "best_weights" in state:
            callback.best_weights = [
                arrays[f"c{index}_w{number}"] for number in range(state["best_weights"])
            ]
        if "probabilities" in state:
            callback.probabilities[:] = [
                arrays[f"c{index}_p{number}"] for number in range(state["probabilities"])
            ]


class Restorer(keras.callbacks.Callback):
    """Sets the callbacks' state again after their on_train_begin reset it (EarlyStopping and
    ReduceLROnPlateau reset wait and best there); placed after them."""

    def __init__(self, callbacks: list, stored):
        super().__init__()
        self.callbacks, self.stored = callbacks, stored

    def on_train_begin(self, logs=None):
        if self.stored is not None:
            meta, arrays = self.stored
            restore_callbacks(self.callbacks, meta["callbacks"], arrays)


class Saver(keras.callbacks.Callback):
    """Keeps the history and writes the checkpoint after every evaluation (last in the list,
    so every other callback has updated its state and the logs)."""

    def __init__(
        self,
        store: Checkpoints,
        label: str,
        fingerprint: dict,
        callbacks: list,
        history: dict[str, list[float]],
        model: keras.Model,
        done: int,
    ):
        super().__init__()
        self.store, self.label, self.fingerprint = store, label, fingerprint
        self.callbacks, self.history = callbacks, history
        self.trained, self.done, self.stopped = model, done, False

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self.done = epoch + 1
        self.stopped = bool(self.trained.stop_training)
        self.write(final=False)

    def write(self, final: bool) -> None:
        """The checkpoint as it stands (final: the run ended)."""
        model = self.trained
        states, arrays = callback_state(self.callbacks)
        meta = {
            "fingerprint": self.fingerprint,
            "done": self.done,
            "stopped": self.stopped,
            "final": final,
            "history": self.history,
            "callbacks": states,
        }
        arrays |= variables_of(model)
        self.store.save(self.label, meta, arrays)
