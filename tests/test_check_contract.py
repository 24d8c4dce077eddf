"""The check contract: a check declared here only, in the test module, reaches every place
that is derived from the declarations (images.csv, --help, summary.json, the cache key)."""

from __future__ import annotations

import csv
import json

import pytest

from audit import cli, codes
from audit.checks import REGISTRY, Check, Registry, Threshold, Thresholds
from audit.records import Finding
from audit.scan import scan

WIDE_CODE = "test_wide_image"


class WideImageCheck(Check):
    """Flags images at least `wide_min_width` pixels wide (a per-file check with a per-file
    threshold, run in this process: the code exists only while the test runs)."""

    name = "wide_image"
    codes = (WIDE_CODE,)
    thresholds = (
        Threshold(
            "wide_min_width",
            40,
            "test_wide_image from this width up (default: {default})",
            minimum=1,
            per_file=True,
            metavar="PX",
        ),
    )

    def check_file(self, facts, found, thresholds):
        if facts.width is not None and facts.width >= thresholds.wide_min_width:
            return [Finding(WIDE_CODE, f"{facts.width} px wide")]
        return []


@pytest.fixture
def registry(monkeypatch) -> Registry:
    monkeypatch.setitem(codes.CODES, WIDE_CODE, ("info", "wider than the test's threshold"))
    return REGISTRY.with_check(WideImageCheck())


def issues_by_path(out) -> dict[str, str]:
    with open(out / "images.csv", encoding="utf-8", newline="") as handle:
        return {row["path"]: row["issues"] for row in csv.DictReader(handle)}


def test_a_check_declared_in_one_place_reaches_report_help_summary_and_cache_key(
    small_dataset, tmp_path, registry, capsys
):
    thresholds = registry.thresholds(wide_min_width=40)
    result = scan(small_dataset, tmp_path / "out", jobs=1, thresholds=thresholds, registry=registry)
    issues = issues_by_path(tmp_path / "out")
    assert all(WIDE_CODE in found for found in issues.values())  # the fixture's JPEGs are 48 px
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["thresholds"]["wide_min_width"] == 40
    assert summary["issue_counts"][WIDE_CODE] == 12
    assert result.summary["cache"]["misses"] == 12

    # --help lists the option with its help text and default; the option parses and validates.
    with pytest.raises(SystemExit):
        cli.build_parser(registry).parse_args(["scan", "--help"])
    assert "--wide-min-width PX" in capsys.readouterr().out
    parsed = cli.build_parser(registry).parse_args(["scan", "x", "--wide-min-width", "100"])
    assert registry.thresholds_from(parsed).wide_min_width == 100
    assert cli.main(["scan", str(small_dataset), "--wide-min-width", "0"], registry) == 2

    # The cache key covers the new check and its threshold: a new value re-inspects every
    # file (and the finding goes away), the same value is served from the cache.
    default_key = REGISTRY.settings_key(REGISTRY.thresholds(), "v")
    assert registry.settings_key(thresholds, "v") != default_key
    higher = registry.thresholds(wide_min_width=100)
    assert registry.settings_key(higher, "v") != registry.settings_key(thresholds, "v")
    rescanned = scan(small_dataset, tmp_path / "out", jobs=1, thresholds=higher, registry=registry)
    assert rescanned.summary["cache"]["misses"] == 12
    assert not any(WIDE_CODE in found for found in issues_by_path(tmp_path / "out").values())


def test_dataset_only_thresholds_leave_the_per_file_key_alone(small_dataset, tmp_path):
    first = REGISTRY.thresholds()
    balance_only = REGISTRY.thresholds(max_imbalance=7.5, outlier_mad_k=5.0, near_radius=6)
    assert REGISTRY.settings_key(first, "v") == REGISTRY.settings_key(balance_only, "v")
    for per_file in ({"min_side": 10}, {"max_aspect_ratio": 2.0}, {"max_pixels": 1000}):
        changed = REGISTRY.thresholds(**per_file)
        assert REGISTRY.settings_key(changed, "v") != REGISTRY.settings_key(first, "v")
    assert REGISTRY.settings_key(first, "v") != REGISTRY.settings_key(first, "w")  # version

    scan(small_dataset, tmp_path / "out", jobs=1, thresholds=first)
    again = scan(small_dataset, tmp_path / "out", jobs=1, thresholds=balance_only)
    assert (again.summary["cache"]["hits"], again.summary["cache"]["misses"]) == (12, 0)
    assert again.summary["thresholds"]["max_imbalance"] == 7.5


def test_every_threshold_has_an_option_and_summary_entry(small_dataset, tmp_path, capsys):
    names = [spec.name for spec in REGISTRY.threshold_specs()]
    assert {"outlier_mad_k", "outlier_min_factor", "near_radius", "max_pixels"} <= set(names)
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["scan", "--help"])
    shown = capsys.readouterr().out
    for spec in REGISTRY.threshold_specs():
        assert spec.option in shown
    result = scan(small_dataset, tmp_path / "out", jobs=1)
    assert set(names) <= set(result.summary["thresholds"])


@pytest.mark.parametrize(
    "values, message",
    [
        ({"max_aspect_ratio": float("nan")}, "must be a finite number"),
        ({"max_imbalance": float("inf")}, "must be a finite number"),
        ({"near_radius": 2.5}, "must be a whole number"),
        ({"min_side": -1}, "must be at least 0"),
        ({"no_such_limit": 1}, "unknown threshold"),
    ],
)
def test_thresholds_are_validated(values, message):
    with pytest.raises(ValueError, match=message):
        Thresholds(**values)


def test_registry_refuses_unknown_codes_and_clashing_names():
    class Undeclared(Check):
        name = "undeclared"
        codes = ("no_such_code",)

    with pytest.raises(ValueError, match="unknown code"):
        REGISTRY.with_check(Undeclared())

    class Clash(Check):
        name = "clash"
        thresholds = (Threshold("min_side", 3, "again"),)

    with pytest.raises(ValueError, match="threshold names must be unique"):
        REGISTRY.with_check(Clash())


def test_summary_sections_go_where_each_check_declares(small_dataset, tmp_path):
    summary = scan(small_dataset, tmp_path / "out", jobs=1).summary
    assert "median_side_px" in summary["thresholds"]["resolution_outlier"]  # resolution
    assert summary["checks"]["duplicates"]["groups"] == 0  # duplicates, under checks
    assert [entry["name"] for entry in summary["classes"]] == ["cat", "dog", "fox"]  # balance
    assert "balance" not in summary["checks"] and "resolution" not in summary["checks"]
