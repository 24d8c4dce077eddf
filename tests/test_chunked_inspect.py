"""Files are inspected in chunks (one worker task each): a file's facts do not depend on
its chunk, and one file's failure stays that file's."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from audit import inspect, measures
from audit.checks import Thresholds
from audit.dataset import FileEntry
from audit.engines import FileWork, InlineEngine, inspect_chunk
from tests.imagegen import FIXTURES, photo_like


@pytest.fixture(scope="module")
def mixed_files(tmp_path_factory) -> list[FileEntry]:
    """Every fixture kind (corrupt, truncated, bombs...), pictures of many sizes and
    modes, flat ones, a FIFO and a broken link: one chunk that mixes them all."""
    folder = tmp_path_factory.mktemp("mixed") / "class"
    folder.mkdir()
    for name, (file_name, data, _codes) in sorted(FIXTURES.items()):
        (folder / f"{name}-{file_name}").write_bytes(data)
    rng = np.random.default_rng(5)
    for index, (width, height) in enumerate([(1, 1), (2, 3), (32, 32), (64, 64), (300, 41)]):
        for mode in ("RGB", "L", "RGBA", "P", "CMYK"):
            image = photo_like(width, height, seed=index).convert(mode)
            image.save(folder / f"p{index}-{mode}.{'jpg' if mode == 'CMYK' else 'png'}")
        Image.new("L", (width, height), 90).save(folder / f"flat{index}.png")
        noise = rng.integers(0, 65535, (height, width), dtype=np.uint16)
        Image.fromarray(noise).save(folder / f"sixteen{index}.png")
    for index in range(12):
        photo_like(320 + 13 * index, 240, seed=index).save(folder / f"photo{index}.jpg", quality=90)
    os.mkfifo(folder / "fifo.jpg")
    (folder / "broken.jpg").symlink_to(folder / "nowhere.jpg")
    return [
        FileEntry(str(path), f"class/{path.name}", "class") for path in sorted(folder.iterdir())
    ]


def test_a_files_facts_do_not_depend_on_its_chunk(mixed_files):
    alone = [inspect.inspect_file(entry, 10**9) for entry in mixed_files]
    together = inspect.inspect_files(mixed_files, 10**9)
    halves = inspect.inspect_files(mixed_files[::2], 10**9) + inspect.inspect_files(
        mixed_files[1::2], 10**9
    )
    reordered = {facts.relpath: facts for facts in halves if isinstance(facts, inspect.Facts)}
    assert together == alone
    assert [reordered[facts.relpath] for facts in alone] == alone
    decoded = [facts for facts in alone if facts.decoded]
    # The mix really holds decoded files with hashes and measures, and files without.
    assert len(decoded) > 30 and all(facts.measures is not None for facts in decoded)
    assert all(facts.phash is not None and facts.phash_zoom for facts in decoded)
    assert any(not facts.decoded for facts in alone)


def test_a_bug_on_one_file_fails_that_file_only(mixed_files, monkeypatch):
    victim = mixed_files[3]
    observe = inspect._observe

    def observe_or_fail(entry, max_pixels):
        if entry is victim:
            raise RuntimeError("a bug of ours")
        return observe(entry, max_pixels)

    expected = [inspect.inspect_file(entry, 10**9) for entry in mixed_files]
    monkeypatch.setattr(inspect, "_observe", observe_or_fail)
    found = inspect.inspect_files(mixed_files, 10**9)
    assert isinstance(found[3], RuntimeError)
    assert found[:3] + found[4:] == expected[:3] + expected[4:]
    records = inspect_chunk(mixed_files, FileWork(Thresholds()))
    assert [finding.code for finding in records[3].findings] == ["unreadable"]
    assert "a bug of ours" in records[3].findings[0].reason
    assert [record.path for record in records] == [entry.relpath for entry in mixed_files]
    assert sum(record.findings[:1] == records[3].findings for record in records) == 1


def test_a_measure_that_fails_costs_that_file_its_measures_only(mixed_files, monkeypatch):
    expected = [inspect.inspect_file(entry, 10**9) for entry in mixed_files]
    measured = [index for index, facts in enumerate(expected) if facts.measures is not None]
    measure_one, calls = measures.measure, []

    def batch_fails(views):
        raise RuntimeError("a bug in the batch")

    def first_fails(view):  # views are measured in the files' order
        calls.append(view)
        if len(calls) == 1:
            raise RuntimeError("a bug on one view")
        return measure_one(view)

    monkeypatch.setattr(measures, "measure_many", batch_fails)
    assert inspect.inspect_files(mixed_files, 10**9) == expected  # one by one instead
    monkeypatch.setattr(measures, "measure", first_fails)
    found = inspect.inspect_files(mixed_files, 10**9)
    lost = [index for index, facts in enumerate(found) if facts != expected[index]]
    assert lost == measured[:1]
    assert found[lost[0]].measures is None and found[lost[0]].phash == expected[lost[0]].phash


def test_the_inline_engine_gives_the_records_of_single_files(mixed_files):
    work = FileWork(Thresholds())
    records = list(InlineEngine(work).submit(mixed_files))
    assert records == [inspect_chunk([entry], work)[0] for entry in mixed_files]


def test_a_bug_in_the_chunks_shared_work_is_blamed_on_its_file(mixed_files, monkeypatch):
    work = FileWork(Thresholds())
    expected = inspect_chunk(mixed_files, work)
    victim = next(index for index, record in enumerate(expected) if record.measures)
    hash_and_measure = inspect._hash_and_measure

    def fails_with_victim(observed):
        if any(fields["relpath"] == mixed_files[victim].relpath for fields in observed):
            raise RuntimeError("a bug in the shared work")
        hash_and_measure(observed)

    monkeypatch.setattr(inspect, "_hash_and_measure", fails_with_victim)
    found = inspect_chunk(mixed_files, work)
    assert found[:victim] + found[victim + 1 :] == expected[:victim] + expected[victim + 1 :]
    assert [finding.code for finding in found[victim].findings] == ["unreadable"]
    assert "a bug in the shared work" in found[victim].findings[0].reason
