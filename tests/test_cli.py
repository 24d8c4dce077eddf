"""The CLI: exit codes 0/1/2/3/130, --fail-on, output ending with the report path, --help."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from audit import cli
from audit.outputs import dataset_key
from tests.conftest import jpeg, write_dataset
from tests.imagegen import encode, photo_like


def run(*argv) -> int:
    return cli.main([str(arg) for arg in argv])


def test_clean_dataset_exits_0_and_prints_report_path(small_dataset, tmp_path, capsys):
    assert run("scan", small_dataset, "--out", tmp_path / "out", "--jobs", 1) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == str(tmp_path / "out" / "report.html")
    assert Path(lines[-1]).is_file()


def test_errors_exit_1_and_print_one_line_each(small_dataset, tmp_path, capsys):
    (small_dataset / "cat" / "broken.jpg").write_bytes(jpeg(7)[:300])
    (small_dataset / "dog" / "empty.jpg").write_bytes(b"")
    assert run("scan", small_dataset, "--out", tmp_path / "out", "--jobs", 1, "--quiet") == 1
    assert capsys.readouterr().err == ""  # --quiet: no progress, no error lines
    assert run("scan", small_dataset, "--out", tmp_path / "out", "--jobs", 1) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: cat/broken.jpg: truncated: " + errors[0].split(": truncated: ")[1],
        "error: dog/empty.jpg: empty_file: 0 bytes",
    ]


@pytest.mark.parametrize(
    "fail_on, expected", [("error", 0), ("warning", 1), ("info", 1), ("never", 0)]
)
def test_fail_on_levels(small_dataset, tmp_path, fail_on, expected):
    (small_dataset / "cat" / "mislabelled.png").write_bytes(
        jpeg(9)
    )  # extension_mismatch: a warning
    assert (
        run(
            "scan",
            small_dataset,
            "--out",
            tmp_path / "out",
            "--jobs",
            1,
            "--fail-on",
            fail_on,
            "--quiet",
        )
        == expected
    )


def test_fail_on_never_even_with_errors(small_dataset, tmp_path):
    (small_dataset / "cat" / "empty.jpg").write_bytes(b"")
    assert (
        run(
            "scan",
            small_dataset,
            "--out",
            tmp_path / "out",
            "--jobs",
            1,
            "--fail-on",
            "never",
            "--quiet",
        )
        == 0
    )


@pytest.mark.parametrize(
    "argv_tail, message",
    [
        (["--jobs", "0"], "argument --jobs: 0 must be at least 1"),
        (["--min-side", "-3"], "argument --min-side: -3 must be at least 0"),
        (["--max-aspect-ratio", "0.5"], "argument --max-aspect-ratio: 0.5 must be at least 1"),
        # NaN would turn the check off and write NaN (not JSON) into summary.json.
        (["--max-aspect-ratio", "nan"], "argument --max-aspect-ratio: nan must be a finite"),
        (["--max-imbalance", "inf"], "argument --max-imbalance: inf must be a finite"),
        (["--outlier-mad-k", "0"], "argument --outlier-mad-k: 0 must be above 0"),
        (["--outlier-min-factor", "abc"], "argument --outlier-min-factor: 'abc' is not a number"),
        (["--near-radius", "32"], "argument --near-radius: 32 must be at least 0 and at most 31"),
        # Past a ceiling: once OverflowError tracebacks (exit 3) from the pool or 2 ** bound.
        (["--outlier-mad-k", "1001"], "argument --outlier-mad-k: 1001 must be above 0 and at most"),
        (["--outlier-min-factor", "1e308"], "argument --outlier-min-factor: 1e308 must be"),
        (["--jobs", "99999999999999999999"], "argument --jobs: 99999999999999999999 must be"),
        (["--min-side", "99999999999999999999"], "argument --min-side: 99999999999999999999"),
        (["--max-pixels", "99999999999999999999"], "argument --max-pixels: 99999999999999999999"),
        # An empty path once meant the working folder: reports written wherever one stood.
        (["--out", ""], "argument --out: a path must not be empty"),
        (["--cache", "x\0y"], "argument --cache: a path cannot hold a NUL byte"),
    ],
)
def test_bad_arguments_exit_2(small_dataset, tmp_path, capsys, argv_tail, message):
    assert run("scan", small_dataset, "--out", tmp_path / "out", *argv_tail) == 2
    assert message in capsys.readouterr().err


def test_cannot_run_exits_2(tmp_path, capsys):
    assert run("scan", tmp_path / "missing") == 2
    assert "does not exist" in capsys.readouterr().err
    flat = write_dataset(tmp_path / "flat", {"a.jpg": jpeg(1), "b.jpg": jpeg(2)})
    assert run("scan", flat, "--out", tmp_path / "out") == 2
    assert "ROOT/<class>/<images>" in capsys.readouterr().err
    assert run("scan", "--fail-on", "sometimes", flat) == 2  # argparse usage error
    assert run() == 2  # no command


def test_out_inside_root_exits_2(small_dataset, capsys):
    assert run("scan", small_dataset, "--out", small_dataset / "reports") == 2
    assert "never writes into" in capsys.readouterr().err


def test_unexpected_failure_exits_3(small_dataset, tmp_path, monkeypatch, capsys):
    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("audit.scan.scan", explode)
    assert run("scan", small_dataset, "--out", tmp_path / "out") == 3
    err = capsys.readouterr().err
    assert "RuntimeError: boom" in err and "unexpected failure" in err


def test_ctrl_c_exits_130(small_dataset, tmp_path, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("audit.scan.scan", interrupt)
    assert run("scan", small_dataset, "--out", tmp_path / "out") == 130


def test_default_out_is_under_reports_and_unique_per_dataset(small_dataset, tmp_path, monkeypatch):
    """Two datasets whose folders share a name get two report folders."""
    monkeypatch.chdir(tmp_path)
    twin = tmp_path / "elsewhere" / small_dataset.name
    shutil.copytree(small_dataset, twin)
    assert run("scan", small_dataset, "--jobs", 1, "--quiet") == 0
    assert run("scan", twin, "--jobs", 1, "--quiet") == 0
    folders = sorted((tmp_path / "reports").iterdir())
    assert len(folders) == 2
    for folder, root in zip(folders, sorted([small_dataset, twin], key=dataset_key), strict=True):
        assert folder.name == dataset_key(root)
        assert folder.name.startswith(f"{small_dataset.name}-")
        assert json.loads((folder / "summary.json").read_text())["root"] == str(root)


def test_module_entry_point_and_help(small_dataset, tmp_path):
    """`python -m audit` runs as a real process, with its pool, and --help documents scan."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "audit",
            "scan",
            str(small_dataset),
            "--out",
            str(tmp_path / "o"),
            "--jobs",
            "2",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("report.html")
    assert (
        "scanning: 12 files" in done.stderr
    )  # progress on stderr (a plain line when not a terminal)
    shown = subprocess.run(
        [sys.executable, "-m", "audit", "scan", "--help"], capture_output=True, text=True
    )
    assert shown.returncode == 0
    for option in (
        "--out",
        "--fail-on",
        "--jobs",
        "--max-pixels",
        "--min-side",
        "--max-aspect-ratio",
        "--max-imbalance",
    ):
        assert option in shown.stdout


def test_the_largest_outlier_settings_do_not_overflow(tmp_path):
    """Sizes 16 to 300 px: MAD > 0, so k = 1000 once gave 2 ** (median + 5000)."""
    sides = (16, 24, 40, 64, 100, 150, 200, 250, 300)
    files = {f"cat/{side}.png": encode(photo_like(side, side, seed=side), "PNG") for side in sides}
    root = write_dataset(tmp_path / "data", files)
    argv = ["--outlier-mad-k", "1000", "--outlier-min-factor", "1000000", "--quiet", "--jobs", 1]
    assert run("scan", root, "--out", tmp_path / "out", *argv) in (0, 1)
    rule = json.loads((tmp_path / "out" / "summary.json").read_text())["thresholds"]
    assert rule["resolution_outlier"]["outliers"] == 0


def test_output_places_that_cannot_be_written_exit_2(small_dataset, tmp_path, capsys):
    """Before: FileExistsError / NotADirectoryError / sqlite3.DatabaseError tracebacks, exit 3."""
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a folder")
    for argv in (
        ["scan", small_dataset, "--out", a_file],
        ["scan", small_dataset, "--out", a_file / "below"],
        ["scan", small_dataset, "--out", "/dev/null"],
        ["scan", small_dataset, "--out", "/proc/image-audit-report"],
        ["check", small_dataset, "--jobs", "0"],
        ["check", small_dataset, "--jobs", "-1"],
        ["history", small_dataset, "--history", a_file],
        ["demo", a_file],
    ):
        assert run(*argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith(("audit: error: ", "python -m audit check: error: ")), argv
        assert "Traceback" not in "\n".join(err), (argv, err)
    assert a_file.read_text() == "not a folder"


def test_an_unreachable_dask_scheduler_exits_2(small_dataset, tmp_path, capsys, monkeypatch):
    pytest.importorskip("dask.distributed")
    from audit import engines

    monkeypatch.setattr(engines, "SCHEDULER_TIMEOUT", "1s")  # refused at once; dask retries
    argv = ["--engine", "dask", "--scheduler", "tcp://127.0.0.1:1", "--quiet"]
    assert run("scan", small_dataset, "--out", tmp_path / "out", *argv) == 2
    assert "cannot reach the Dask scheduler tcp://127.0.0.1:1" in capsys.readouterr().err
