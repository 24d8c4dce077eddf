"""The Dask engine gives the same report as the local one (on a LocalCluster)."""

from __future__ import annotations

import pytest

from audit.scan import scan

pytest.importorskip("dask.distributed")
pytestmark = pytest.mark.slow


def test_dask_output_equals_local_output(small_dataset, tmp_path):
    (small_dataset / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    scan(small_dataset, tmp_path / "local", jobs=2, cache=False)
    result = scan(small_dataset, tmp_path / "dask", jobs=2, cache=False, engine="dask")
    assert result.summary["engine"] == "dask"
    for name in ("images.csv", "findings.csv", "duplicates.csv"):
        assert (tmp_path / "dask" / name).read_bytes() == (
            tmp_path / "local" / name
        ).read_bytes(), name
