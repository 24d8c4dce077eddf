"""The Dask engine gives the same report as the local one, on a LocalCluster of its own and
on an existing cluster given by address, with the files spread over several workers."""

from __future__ import annotations

import pytest

from audit import engines
from audit.scan import scan

pytest.importorskip("dask.distributed")
pytestmark = pytest.mark.slow

TABLES = ("images.csv", "findings.csv", "duplicates.csv")


def assert_same_tables(first, second) -> None:
    for name in TABLES:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_dask_output_equals_local_output(small_dataset, tmp_path, monkeypatch):
    from dask.distributed import Client, LocalCluster, get_task_stream

    (small_dataset / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    scan(small_dataset, tmp_path / "local", jobs=2, cache=False)
    result = scan(small_dataset, tmp_path / "dask", jobs=2, cache=False, engine="dask")
    assert result.summary["engine"] == "dask"
    assert_same_tables(tmp_path / "local", tmp_path / "dask")

    # An existing cluster (--scheduler): 13 files in tasks of 3 reach both worker processes.
    monkeypatch.setattr(engines, "DASK_CHUNK_SIZE", 3)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        with get_task_stream(client) as stream:  # records the tasks of every client
            remote = scan(
                small_dataset,
                tmp_path / "remote",
                jobs=2,
                cache=False,
                engine="dask",
                scheduler=cluster.scheduler_address,
            )
        tasks = [task for task in stream.data if "inspect_chunk" in str(task["key"])]
    assert remote.summary["engine"] == "dask"
    assert len(tasks) == 5  # ceil(13 / 3)
    assert len({task["worker"] for task in tasks}) == 2
    assert_same_tables(tmp_path / "local", tmp_path / "remote")
