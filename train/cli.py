"""Command line: `python -m train run ROOT --report REPORT_DIR ...`.

Exit codes as for the audit: 0 every verdict passed, 1 a sanity verdict failed, 2 could
not run (bad arguments, report missing or stale, a class without images), 3 unexpected
failure, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from audit import argtypes
from audit.boundary import run_command
from audit.errors import InvalidArgument, MissingDependency, UserError
from audit.outputs import default_report_dir, refuse_inside_dataset

if TYPE_CHECKING:
    from train.config import TrainConfig

EXIT_PASSED, EXIT_FAILED = 0, 1


_SEED = argtypes.integer(minimum=0, maximum=2**32 - 1)  # the seeds TensorFlow accepts


def _add_size_options(parser: argparse.ArgumentParser, defaults: TrainConfig) -> None:
    """--image-size and --batch-size, as `run` and `label-issues` take them (a preset's
    value when not given)."""
    parser.add_argument(
        "--image-size",
        type=argtypes.integer(minimum=8, maximum=4096),
        help=f"square input side in pixels (default: {defaults.image_size}, or the preset's)",
    )
    parser.add_argument(
        "--batch-size",
        type=argtypes.integer(minimum=1, maximum=65536),
        help=f"default: {defaults.batch_size}, or the preset's",
    )


def build_parser() -> argparse.ArgumentParser:
    from train.config import NORMALIZATIONS, PRESETS, SANITY, STAGE_NAMES, TrainConfig

    defaults = TrainConfig()
    parser = argparse.ArgumentParser(
        prog="python -m train",
        description="Train on an audited dataset, stage by stage, with verdicts.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="run the recipe's stages on an audited dataset",
        description="Run stages on the usable files of an audit report. Each stage states a "
        f"hypothesis and ends with verdicts. Stages: {', '.join(STAGE_NAMES)}. "
        f"'sanity' = {', '.join(SANITY)}.",
    )
    run.add_argument("root", metavar="ROOT", help="the dataset folder the report was made from")
    run.add_argument(
        "--report",
        metavar="REPORT_DIR",
        help="output folder of `python -m audit scan ROOT` (default: the scan's default, "
        "reports/<ROOT name>-<hash of its path>)",
    )
    run.add_argument(
        "--stages",
        help="sanity, all, or a comma-separated list (default: sanity; all with --preset)",
    )
    run.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        help="whole-recipe settings: cpu-small (the demo on 2 CPU cores), full (the source "
        "article's sizes, for a GPU)",
    )
    run.add_argument(
        "--weights",
        metavar="PATH",
        help="local MobileNetV2 no-top weights for the pretrained stage (skipped without)",
    )
    _add_size_options(run, defaults)
    run.add_argument(
        "--steps",
        type=argtypes.integer(minimum=1, maximum=10_000_000),
        help="optimisation steps (batches) per training run, at --batch-size (default: "
        f"{defaults.steps}, or the preset's); a run with another batch size sees as many images",
    )
    run.add_argument(
        "--evaluations",
        type=argtypes.integer(minimum=1, maximum=100_000),
        help="validation passes per training run, evenly over its steps: the points of the "
        "curves and the unit of early stopping's patience (default: "
        f"{defaults.evaluations}, or the preset's)",
    )
    # Budgets were epochs before 0.2: say what replaced the option instead of argparse's
    # "unrecognized arguments".
    run.add_argument("--epochs", type=_epochs_replaced, help=argparse.SUPPRESS)
    run.add_argument(
        "--normalization",
        choices=NORMALIZATIONS,
        default=defaults.normalization,
        help="input scaling of the models trained from scratch: rescale (x / 255) or channel "
        "(per-channel mean and standard deviation of the training images) (default: "
        f"{defaults.normalization})",
    )
    run.add_argument(
        "--seed",
        type=_SEED,
        default=defaults.seed,
        help=f"random seed for the split, the weights and the batches (default: {defaults.seed})",
    )
    run.add_argument(
        "--learning-rate",
        type=_learning_rate,
        default=defaults.learning_rate,
        metavar="LR|auto",
        help=f"Adam learning rate (default: {defaults.learning_rate:g}); auto: run lr_range "
        "first and train with the rates it proposes (the simple CNN's, and the Xceptions')",
    )
    run.add_argument(
        "--resume",
        metavar="RUN",
        help="continue the interrupted run folder RUN (runs/<run-id>): finished stages are read "
        "back, the unfinished one continues from its last checkpointed evaluation; refused "
        "(exit 2) when RUN was made with other options",
    )
    run.add_argument(
        "--validation-fraction",
        type=argtypes.open_fraction,
        default=0.2,
        help="validation share when the dataset has no split folders (default: 0.2)",
    )
    run.add_argument(
        "--test-fraction",
        type=argtypes.open_fraction,
        help="hold out this share of each class as a test split (default: none): drawn from "
        "the training side, duplicate groups kept on one side, never used to choose anything, "
        "evaluated once at the end with the exported model (RUN/test.json)",
    )
    run.add_argument(
        "--on-leak",
        choices=("drop", "refuse"),
        default="drop",
        help="with the dataset's own train/validation folders, what to do with a duplicate "
        "group on both sides: drop its validation-side copies from validation (default) or "
        "refuse the run (exit 2)",
    )
    run.add_argument(
        "--bias",
        choices=("prior", "zero"),
        default="prior",
        help="output bias: from the class prior (default) or zero (ablation)",
    )
    run.add_argument(
        "--no-flip",
        dest="flip",
        action="store_false",
        help="no horizontal flips in augmentation: for data whose meaning a mirror changes "
        "(digits, text, left/right labels)",
    )
    run.add_argument(
        "--runs-dir", default="runs", metavar="DIR", help="where run folders go (default: runs/)"
    )
    run.add_argument("--run-id", help="name of this run's folder (default: a UTC timestamp)")
    run.set_defaults(handler=run_stages)
    report = commands.add_parser(
        "report",
        help="rebuild a run's ablation report (ablation.csv, ablation.md, ablation.png)",
        description="Rebuild ablation.csv, ablation.md and the four-panel ablation.png from a "
        "run folder's stages.",
    )
    report.add_argument("run", metavar="RUN_DIR", help="a folder runs/<run-id>")
    report.set_defaults(handler=rebuild_report)
    predict = commands.add_parser(
        "predict",
        help="predict the class of images with an exported model (RUN/export)",
        description="Read an export (model.keras + model.json, written to RUN/export/ by "
        "`train run`) and print one CSV row per image: path, predicted class, its "
        "probability, then the probability of each class. Exit 0 when every image was "
        "read, 1 when some could not be (each named on stderr), 2 for an unusable export.",
    )
    predict.add_argument("model", metavar="MODEL", help="an export folder (or its model.json)")
    predict.add_argument("images", metavar="IMAGE", nargs="+", help="image files")
    predict.add_argument("--out", metavar="FILE", help="write the CSV here instead of stdout")
    predict.set_defaults(handler=predict_images)
    _add_label_issues(commands, PRESETS)
    return argtypes.check_paths(parser)


def mirror_note(flip: bool, mirrors_searched: bool, stage_names: list[str]) -> str | None:
    """The note printed when a run flips images (an augmenting stage, flips on) on a report
    scanned without --mirror: a mirrored copy in validation is then seen in training."""
    from train.config import ABLATION

    augmenting = set(ABLATION[ABLATION.index("augment") :]) | {"ensemble"}
    if not flip or mirrors_searched or not augmenting & set(stage_names):
        return None
    return (
        "note: training flips images, and the audit did not look for mirrored copies: a "
        "mirrored copy in validation is seen in training. Scan with --mirror to keep them "
        "on one side, or train with --no-flip"
    )


def _learning_rate(text: str) -> float | str:
    """A learning rate in (0, 10], or "auto" (train.lr_range proposes it)."""
    if text.strip().lower() == "auto":
        return "auto"
    return argtypes.number(minimum=0.0, maximum=10.0, above_minimum=True)(text)


def _epochs_replaced(text: str) -> int:
    raise argparse.ArgumentTypeError(
        "budgets are in optimisation steps now: use --steps N (N = epochs x training images / "
        "batch size) and --evaluations for how often validation is measured"
    )


def select_stages(spec: str) -> list[str]:
    from train.config import SANITY, STAGE_NAMES

    if spec in ("sanity", "all"):
        return list(SANITY) if spec == "sanity" else list(STAGE_NAMES)
    names = [name.strip() for name in spec.split(",") if name.strip()]
    unknown = [name for name in names if name not in STAGE_NAMES]
    if unknown or not names:
        raise InvalidArgument(
            f"unknown stage(s) {', '.join(unknown) or '(none given)'}; choose from sanity, all, "
            f"{', '.join(STAGE_NAMES)}"
        )
    return names


# What training needs beyond the audit (the `train` extra), by module name.
TRAINING_PACKAGES = ("tensorflow", "keras", "matplotlib")
TRAIN_INSTALL_HINT = "pip install 'image-audit[train]'"


def require_training_packages() -> None:
    """MissingDependency (exit 2, with the install hint) when a package of the `train` extra
    cannot be imported; the commands that train, predict or draw call it first."""
    import importlib

    missing = []
    for name in TRAINING_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise MissingDependency(
            f"this command needs {', '.join(missing)} (the train extra): {TRAIN_INSTALL_HINT}"
        )


def run_stages(args: argparse.Namespace) -> int:
    require_training_packages()
    from train.config import PRESETS, TrainConfig
    from train.data import MIN_VALIDATION_IMAGES, load_examples, split_examples
    from train.recipe import run_recipe

    default = "all" if args.preset else "sanity"
    names = select_stages(default if args.stages is None else args.stages)
    settings = dict(PRESETS.get(args.preset, {}))
    for option in ("image_size", "batch_size", "steps", "evaluations"):
        if getattr(args, option) is not None:
            settings[option] = getattr(args, option)
    report_dir = args.report or default_report_dir(args.root)
    config = TrainConfig(
        **settings,
        seed=args.seed,
        **(
            {"auto_learning_rate": True}
            if args.learning_rate == "auto"
            else {"learning_rate": args.learning_rate}
        ),
        bias=args.bias,
        flip=args.flip,
        normalization=args.normalization,
        weights=args.weights,
    )
    examples = load_examples(report_dir, root=args.root)
    split = split_examples(
        examples,
        args.validation_fraction,
        args.seed,
        on_leak=args.on_leak,
        test_fraction=args.test_fraction,
    )
    print(
        f"{len(split.train_paths)} training and {len(split.val_paths)} validation images "
        f"({examples.skipped_errors} left out for audit errors); split: {split.how}"
    )
    if split.test_paths:
        print(
            f"{len(split.test_paths)} test images held out ({split.details['test_how']}); "
            "evaluated once, at the end"
        )
    if split.details.get("left_out_classes"):
        print(f"left out (no usable image): {', '.join(split.details['left_out_classes'])}")
    if split.details.get("leak_note"):
        print(f"split leak: {split.details['leak_note']}")
    thin = split.details.get("thin_validation_classes")
    if thin:
        shown = ", ".join(f"{name} ({count})" for name, count in thin.items())
        print(
            f"too few validation images (fewer than {MIN_VALIDATION_IMAGES}) to measure: {shown}; "
            "their validation "
            "figures mean little"
        )
    thin_test = split.details.get("thin_test_classes")
    if thin_test:
        from audit.escaping import terminal  # class names on one line

        shown = ", ".join(f"{terminal(name)} ({count})" for name, count in thin_test.items())
        print(
            f"too few test images (fewer than {MIN_VALIDATION_IMAGES}) to measure: {shown}; "
            "their test figures mean little (test.json: thin_test_classes)"
        )
    note = mirror_note(config.flip, examples.mirrors_searched, names)
    if note:
        print(note)
    runs_dir, run_id = args.runs_dir, args.run_id
    if args.resume:
        resumed = Path(args.resume)
        if not resumed.is_dir():
            raise UserError(f"--resume {args.resume}: no such run folder")
        if run_id not in (None, resumed.name):
            raise InvalidArgument(f"--resume {args.resume} and --run-id {run_id} disagree")
        runs_dir, run_id = str(resumed.parent), resumed.name
    refuse_inside_dataset(examples.root, Path(runs_dir), "--runs-dir")
    outcome = run_recipe(
        split,
        config,
        names,
        runs_dir=runs_dir,
        run_id=run_id,
        resume_run=bool(args.resume),
    )
    print(outcome.table())
    if outcome.report:
        print(outcome.report["ablation.md"].read_text(), end="")
        print(
            f"Ablation report: {outcome.report['ablation.md']}, "
            f"figure: {outcome.report['ablation.png']}"
        )
    print(outcome.export_note[:1].upper() + outcome.export_note[1:])
    if outcome.test is not None and not outcome.report:
        from train.ablation import held_out_line

        print(held_out_line(outcome.run_path))  # ablation.md, printed above, holds it otherwise
    from train.tensorboard_logs import view_hint

    print(view_hint(outcome.run_path))
    print(f"Run folder: {outcome.run_path}")
    return EXIT_FAILED if outcome.sanity_failed else EXIT_PASSED


def rebuild_report(args: argparse.Namespace) -> int:
    require_training_packages()
    from train.ablation import write_report

    run = Path(args.run)
    if not any(run.glob("[0-9][0-9]-*/metrics.json")):
        raise UserError(f"{run} holds no stage folder (runs/<run-id>/<NN-stage>/metrics.json)")
    paths = write_report(run)
    print(paths["ablation.md"].read_text(), end="")
    print(f"Written: {', '.join(str(path) for path in paths.values())}")
    return EXIT_PASSED


def predict_images(args: argparse.Namespace) -> int:
    require_training_packages()
    from train.export import run_predict

    return run_predict(args.model, args.images, args.out)


def _add_label_issues(commands, presets) -> None:
    from train.config import TrainConfig
    from train.label_issues import DEFAULT_FOLDS, DEFAULT_MODEL, DEFAULT_STEPS, MODELS

    defaults = TrainConfig()

    command = commands.add_parser(
        "label-issues",
        help="find images whose label a model's out-of-fold predictions doubt (cleanlab)",
        description="Train the recipe's model K times, each time on all folds but one (duplicate "
        "groups kept in one fold), predict the held-out fold, and let cleanlab's confident "
        "learning pick the doubtful labels. Writes label_issues.csv, label_issues.json and "
        "the out-of-fold confusion into the report folder; the next scan there shows them as "
        "suspected_label_issue. Needs the labels extra: pip install 'image-audit[labels]'.",
    )
    command.add_argument("root", metavar="ROOT", help="the dataset folder the report was made from")
    command.add_argument(
        "--report",
        metavar="REPORT_DIR",
        help="output folder of `python -m audit scan ROOT` (default: the scan's default)",
    )
    command.add_argument(
        "--folds",
        type=argtypes.integer(minimum=2, maximum=50),
        default=DEFAULT_FOLDS,
        help=f"K, the number of folds (default: {DEFAULT_FOLDS})",
    )
    command.add_argument(
        "--model", choices=MODELS, default=DEFAULT_MODEL, help=f"default: {DEFAULT_MODEL}"
    )
    command.add_argument(
        "--preset", choices=tuple(presets), help="image size, batch size and steps of a preset"
    )
    _add_size_options(command, defaults)
    command.add_argument(
        "--steps",
        type=argtypes.integer(minimum=1, maximum=10_000_000),
        help=f"optimisation steps per fold (default: {DEFAULT_STEPS}, or the preset's)",
    )
    command.add_argument(
        "--learning-rate",
        type=argtypes.number(minimum=0.0, maximum=10.0, above_minimum=True),
        help=f"Adam learning rate (default: {defaults.learning_rate:g})",
    )
    command.add_argument(
        "--seed",
        type=_SEED,
        default=defaults.seed,
        help=f"random seed of the folds, the weights and the batches (default: {defaults.seed})",
    )
    command.set_defaults(handler=find_label_issues)


def find_label_issues(args: argparse.Namespace) -> int:
    require_training_packages()
    import shlex

    from audit.escaping import terminal
    from train.label_issues import label_issues, label_issues_config, rescan_hint

    report_dir = args.report or default_report_dir(args.root)
    config = label_issues_config(
        args.preset, args.model, args.image_size, args.batch_size, args.steps,
        args.learning_rate, args.seed,
    )  # fmt: skip
    document = label_issues(args.root, report_dir, config, args.folds, args.model)
    print(
        f"out-of-fold accuracy {document['out_of_fold_accuracy']:.3f} over "
        f"{document['images']} images ({document['folds']} folds, {document['seconds']:.0f} s); "
        f"worst class recall {document['worst_class_recall']}"
    )
    if document["weak_model"]:
        print(
            "note: a weak held-out model (out-of-fold accuracy "
            f"{document['out_of_fold_accuracy']:.3f}, always predicting the largest class: "
            f"{document['majority_rate']:.3f}): its "
            "suggestions say more about the model than the labels; raise --steps or try "
            "another --model before trusting them"
        )
    issues = document["issues"]
    print(
        f"{len(issues)} suspected label issue(s) ({document['flagged_share']:.1%} of the images), "
        "worst first:"
    )
    for issue in issues[:10]:
        print(
            terminal(
                f"  {issue.score:.3f}  {issue.path}: given {issue.label}, "
                f"suggested {issue.suggested_label}"
            )
        )
    if len(issues) > 10:
        print(f"  ... and {len(issues) - 10} more in label_issues.csv")
    print(terminal(f"Written into {report_dir}: {', '.join(document['files'])}"))
    print(terminal(rescan_hint(shlex.quote(args.root), shlex.quote(str(report_dir)))))
    return EXIT_PASSED


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    return run_command(build_parser(), argv, "train")
