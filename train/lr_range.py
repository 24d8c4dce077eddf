"""The learning-rate range test (Leslie Smith, "Cyclical Learning Rates", 2015; fastai's lr_find).

A fresh model trains for a short run while its learning rate grows exponentially, step by step,
from TrainConfig.lr_range_start to lr_range_end (1e-6 to 1 over 100 steps by default; fastai:
1e-7 to 10 over 100). The training loss of each batch is smoothed with a debiased
exponential moving average, as fastai's (beta 0.9 here, fastai's 0.98: see SMOOTHING). The
test stops where the loss diverges: once the smoothed loss, having fallen clearly below the
prior's entropy, comes back to it (no better than the untrained model, whose output bias holds
the prior), or stops being finite (fastai stops at four times the minimum: see diverged()).

The proposal is a tenth of the rate at which the loss diverged. fastai's `lr_find` suggests,
since 2.5, `valley` (the longest descending stretch of the curve, two thirds of the way down)
and before that `lr_min` (a tenth of the rate at the smoothed minimum) and `lr_steep` (the
steepest descent); all aim an order of magnitude below where training blows up. A tenth of the
minimum's rate was too timid: on three classes of coloured shapes at 16 px
(tests.imagegen.colour_dataset, smoothing 0.98) the smoothed minimum sat at 0.035 and the loss
blew up at 0.11; constant training at 0.035 (ten times fastai's `lr_min`) still learned within
the first evaluation (training loss 0.46 against the entropy's 1.10). A tenth of
the divergence rate keeps one order of magnitude of headroom by construction: ten times the
proposal is the rate at which the loss left the falling stretch. When the loss never diverges
within the range, the proposal falls back to fastai's `lr_min` (a tenth of the minimum's rate).
The minimum and the steepest descent (the most negative slope of the smoothed loss against
log10 rate) are reported beside it.

With --learning-rate auto the proposals replace the run's learning rates (train.recipe).
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from train import figures
from train.config import TrainConfig
from train.runs import StageResult, Verdict
from train.stages import Context, _result, movement_margin

# The smoothing of the per-batch losses. fastai's 0.98 averages over about 50 steps: on a
# 100-step range that is half the range, 3 decades of rate here, and on three classes of 16 px
# shapes the smoothed loss had not risen back when the range ended, while the raw losses sat at
# the prior's level (a dead network) for the last decade. 0.9 averages over about 10 steps.
SMOOTHING = 0.9
DIVERGENCE = 4.0  # stop once the smoothed loss exceeds this many times its minimum (fastai)
# Which config field each tested model's proposal replaces under --learning-rate auto.
RATE_FIELDS = {"simple_cnn": "learning_rate", "small_xception": "xception_learning_rate"}


def rates(config: TrainConfig) -> np.ndarray:
    """The learning rate of each step: exponential from lr_range_start to lr_range_end."""
    fraction = np.arange(config.lr_range_steps) / (config.lr_range_steps - 1)
    return config.lr_range_start * (config.lr_range_end / config.lr_range_start) ** fraction


def smoothed(losses: list[float]) -> np.ndarray:
    """The debiased exponential moving average of the per-batch losses (fastai's form)."""
    average, out = 0.0, []
    for index, loss in enumerate(losses):
        average = SMOOTHING * average + (1.0 - SMOOTHING) * loss
        out.append(average / (1.0 - SMOOTHING ** (index + 1)))
    return np.asarray(out)


def diverged(smooth: np.ndarray, entropy: float, margin: float) -> bool:
    """Whether the last smoothed loss has diverged: not finite; back within margin of the
    prior's entropy (no better than the untrained model: a network whose ReLUs died outputs its
    bias, the prior, and sits just below the entropy) once the minimum so far had fallen below it
    by twice margin; or, when it never fell, above four times the entropy. Before the loss
    falls, batches of another class mix move it around the entropy (the first steps crossed it
    at 1.7e-6 on three classes of 16 px shapes). fastai's four times the minimum stopped on a
    rebound of a small minimum (0.053 on coloured shapes) at a rate that still trained well
    when held constant."""
    last = smooth[-1]
    if not np.isfinite(last):
        return True
    fell = float(np.nanmin(smooth)) <= entropy - 2.0 * margin
    return bool(last > (entropy - margin if fell else DIVERGENCE * entropy))


def suggest(
    learning_rates: np.ndarray, smooth: np.ndarray, entropy: float, margin: float
) -> dict[str, float]:
    """The proposal (a tenth of the rate where the loss diverged; a tenth of the minimum's rate
    when it never did), the divergence rate (0.0: none), the minimum and its rate, and the rate
    of steepest descent of the smoothed loss against log10 rate."""
    finite = np.isfinite(smooth)
    lowest = int(np.argmin(np.where(finite, smooth, np.inf)))
    divergence = float(learning_rates[-1]) if diverged(smooth, entropy, margin) else 0.0
    slopes = (
        np.gradient(smooth[: lowest + 1], np.log10(learning_rates[: lowest + 1]))
        if (lowest >= 2)
        else np.zeros(1)
    )
    steepest = int(np.argmin(slopes))
    return {
        "proposed": (divergence or float(learning_rates[lowest])) / 10.0,
        "divergence_rate": divergence,
        "minimum_loss_rate": float(learning_rates[lowest]),
        "minimum_loss": float(smooth[lowest]),
        "steepest_rate": float(learning_rates[steepest]),
    }


def model_options(name: str, config: TrainConfig) -> dict:
    """The builder options of the tested model: the baseline's simple CNN, or the chain's
    Xception (as the xception stage builds it)."""
    if name == "simple_cnn":
        return {"width": config.width}
    return {
        "sizes": config.xception_sizes,
        "final": config.xception_final,
        "batchnorm_momentum": config.batchnorm_momentum,
    }


def range_test(context: Context, name: str) -> dict:
    """One range test of model `name`: {"learning_rate", "loss", "smoothed"} per step run, and
    the suggestions (suggest)."""
    config = context.config
    schedule = rates(config)
    model = context.build(name, learning_rate=float(schedule[0]), **model_options(name, config))
    train = context.dataset("train", repeat=True)
    context.reseed()
    entropy = context.init.expected_loss
    margin = movement_margin(context)
    losses: list[float] = []
    for step, (images, labels) in enumerate(train.take(len(schedule))):
        model.optimizer.learning_rate = float(schedule[step])
        losses.append(float(model.train_on_batch(images, labels, return_dict=True)["loss"]))
        if diverged(smoothed(losses), entropy, margin):
            break
    smooth = smoothed(losses)
    done = len(losses)
    context.log(
        f"[lr_range {name}] {done} steps, rate {schedule[0]:.1e} to {schedule[done - 1]:.1e}"
    )
    return {
        "learning_rate": [float(rate) for rate in schedule[:done]],
        "loss": losses,
        "smoothed": [float(value) for value in smooth],
        **suggest(schedule[:done], smooth, entropy, margin),
    }


def lr_range(context: Context) -> StageResult:
    """The range test of each model in TrainConfig.lr_range_models, with its proposed rate."""
    started = time.monotonic()
    config = context.config
    names = tuple(config.lr_range_models)
    result = _result(
        "lr_range",
        f"Over {config.lr_range_steps} steps of exponentially growing learning rate "
        f"({config.lr_range_start:g} to {config.lr_range_end:g}), the smoothed training loss "
        "of each model falls below the prior's entropy before it diverges, so a rate can be "
        "proposed: a tenth of the rate at which the loss diverges.",
        context,
        models=list(names),
    )
    entropy = context.init.expected_loss
    margin = movement_margin(context)
    tables, summary, history = [], {}, {}
    for name in names:
        found = range_test(context, name)
        drop = entropy - found["minimum_loss"]
        field = RATE_FIELDS[name]
        result.verdicts.append(
            Verdict(
                f"{name}_loss_falls_before_divergence",
                drop,
                margin,
                drop >= margin,
                "value >= threshold",
                f"smoothed training loss {found['minimum_loss']:.4f} at rate "
                f"{found['minimum_loss_rate']:.2e} vs the prior's entropy {entropy:.4f}; "
                + (
                    f"diverged at {found['divergence_rate']:.2e}: proposed {field} "
                    f"{found['proposed']:.2e} (a tenth of that)"
                    if found["divergence_rate"]
                    else f"never diverged: proposed {field} {found['proposed']:.2e} (a tenth "
                    "of the minimum's rate)"
                )
                + f"; steepest descent at {found['steepest_rate']:.2e}",
            )
        )
        summary[f"proposed_{field}"] = found["proposed"]
        summary[f"{name}_minimum_loss_rate"] = found["minimum_loss_rate"]
        summary[f"{name}_divergence_rate"] = found["divergence_rate"]
        summary[f"{name}_steepest_rate"] = found["steepest_rate"]
        summary[f"{name}_steps_run"] = len(found["loss"])
        history[f"{name}_learning_rate"] = found["learning_rate"]
        history[f"{name}_loss"] = found["loss"]
        history[f"{name}_smoothed_loss"] = found["smoothed"]
        tables += [
            {
                "model": name,
                "step": step + 1,
                "learning_rate": rate,
                "loss": loss,
                "smoothed_loss": smooth,
            }
            for step, (rate, loss, smooth) in enumerate(
                zip(found["learning_rate"], found["loss"], found["smoothed"], strict=True)
            )
        ]
    summary["rule"] = (
        "a tenth of the rate at which the smoothed loss diverged (back to the prior's entropy "
        "after falling, or not finite); a tenth of the minimum's rate (fastai's lr_min) if it "
        "never did"
    )
    result.summary = summary
    # Exactly the rates the run takes (apply): {config field: rate} under --learning-rate
    # auto for the models whose range test passed; false when none was taken.
    summary["applied"] = (proposals(result) or False) if config.auto_learning_rate else False
    result.history = history
    result.extras = {
        "tables": {"lr_range.csv": tables},
        "figures": {"lr_range.png": lambda path: plot(history, summary, names, entropy, path)},
    }
    result.seconds = time.monotonic() - started
    return result


def proposals(result: StageResult) -> dict[str, float]:
    """The config fields (learning_rate, xception_learning_rate) and their proposed values, for
    the models whose range test passed; {} when none did (or the stage was skipped)."""
    if result.skipped is not None:
        return {}
    found = {}
    for name, field in RATE_FIELDS.items():
        verdict = next(
            (v for v in result.verdicts if v.name == f"{name}_loss_falls_before_divergence"), None
        )
        value = result.summary.get(f"proposed_{field}")
        if verdict is not None and verdict.passed and value:
            found[field] = float(value)
    return found


def apply(config: TrainConfig, result: StageResult) -> tuple[TrainConfig, str]:
    """The configuration with the proposed rates (--learning-rate auto), and a line saying what
    was taken, or what was kept and why."""
    taken = proposals(result)
    kept = [field for name, field in RATE_FIELDS.items() if name in config.lr_range_models]
    kept = [field for field in kept if field not in taken]
    parts = [f"{field} {value:.3g} (lr_range's proposal)" for field, value in taken.items()]
    parts += [
        f"{field} {getattr(config, field):g} kept: the range test found no falling loss"
        for field in kept
    ]
    changed = replace(
        config,
        learning_rate=taken.get("learning_rate", config.learning_rate),
        xception_learning_rate=taken.get("xception_learning_rate", config.xception_learning_rate),
    )
    return changed, "learning rates: " + "; ".join(parts)


def plot(
    history: dict[str, list[float]],
    summary: dict,
    names: tuple[str, ...],
    entropy: float,
    path,
) -> None:
    """Smoothed loss against learning rate (log scale), one panel per model, with the proposal
    and the minimum marked and the prior's entropy as reference."""
    plt = figures.plt
    figure, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4), squeeze=False)
    for axis, name in zip(axes[0], names, strict=True):
        field = RATE_FIELDS[name]
        axis.plot(
            history[f"{name}_learning_rate"], history[f"{name}_loss"], alpha=0.3, label="loss"
        )
        axis.plot(
            history[f"{name}_learning_rate"], history[f"{name}_smoothed_loss"], label="smoothed"
        )
        axis.axhline(entropy, linestyle="--", color="grey", label="prior's entropy")
        axis.axvline(
            summary[f"{name}_minimum_loss_rate"], linestyle=":", color="red", label="minimum"
        )
        if summary[f"{name}_divergence_rate"]:
            axis.axvline(
                summary[f"{name}_divergence_rate"], linestyle=":", color="black", label="diverged"
            )
        axis.axvline(summary[f"proposed_{field}"], linestyle="-.", color="green", label="proposed")
        axis.set_xscale("log")
        axis.set_xlabel("learning rate")
        axis.set_ylabel("training loss")
        axis.set_title(f"{name}: proposed {summary[f'proposed_{field}']:.2e}")
        finite = [value for value in history[f"{name}_smoothed_loss"] if np.isfinite(value)]
        if finite:
            axis.set_ylim(0, max(entropy, min(finite)) * DIVERGENCE)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
