"""Resolution checks: the robust outlier rule (IQR = 0 included), tiny images, aspect ratio."""

from __future__ import annotations

from audit.checks import Thresholds, resolution
from audit.records import FileRecord
from audit.table import ScanTable


def table_of(sizes: list[tuple[int, int]]) -> ScanTable:
    table = ScanTable(None, ("a",))
    for index, (width, height) in enumerate(sizes):
        table.append(
            FileRecord(f"a/{index}.jpg", "a", 1, "JPEG", "RGB", width, height, "", None, 0)
        )
    return table


def outliers(sizes, **limits) -> set[int]:
    return set(resolution.check_dataset(table_of(sizes), Thresholds(**limits)).file_findings)


def test_one_shared_size_iqr_zero():
    sizes = [(32, 32)] * 50 + [(64, 64), (16, 16), (40, 40), (32, 24), (33, 31)]
    result = resolution.check_dataset(table_of(sizes), Thresholds())
    assert set(result.file_findings) == {50, 51}  # twice as large, twice as small
    assert result.summary["mad_is_zero"] is True
    assert result.summary["lower_side_px"] == 16.0 and result.summary["upper_side_px"] == 64.0
    assert "2.0x larger" in result.file_findings[50][0].reason


def test_varied_sizes_use_the_mad():
    sizes = [(w, int(w * 0.75)) for w in range(300, 700, 8)] + [(4000, 3000), (20, 15)]
    found = outliers(sizes)
    assert found == {len(sizes) - 2, len(sizes) - 1}


def test_too_few_images_skips_the_rule():
    result = resolution.check_dataset(table_of([(32, 32)] * 5 + [(512, 512)]), Thresholds())
    assert result.file_findings == {} and "skipped" in result.summary


def test_unusable_rows_are_not_counted():
    table = table_of([(32, 32)] * 10 + [(512, 512)])
    table.mark_unusable([10])
    assert resolution.check_dataset(table, Thresholds()).file_findings == {}


def test_min_factor_is_configurable():
    sizes = [(32, 32)] * 20 + [(48, 48)]
    assert outliers(sizes) == set()
    assert outliers(sizes, outlier_min_factor=1.4) == {20}
