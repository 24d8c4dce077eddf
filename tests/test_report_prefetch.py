"""The duplicate groups' thumbnails are asked for before the records are read (the workers
make them while the tables are written), only those the page surely shows, and the page
is the same as when every thumbnail is asked for at the end."""

from __future__ import annotations

import re

from audit import report
from audit.scan import scan
from tests.conftest import jpeg, write_dataset


def _dataset(tmp_path):
    files = {f"cat/c{i}.jpg": jpeg(i) for i in range(4)}
    files.update({f"dog/d{i}.jpg": jpeg(10 + i) for i in range(4)})
    files["dog/copy_of_c0.jpg"] = jpeg(0)  # a copy under another label: a duplicate group
    files["cat/copy_of_c1.jpg"] = jpeg(1)
    return write_dataset(tmp_path / "data", files)


def _asked(monkeypatch):
    calls: list[tuple[list[str], bool]] = []
    real = report.ThumbnailPrefetch.prefetch

    def spy(self, relpaths, wait=True):
        relpaths = list(relpaths)
        calls.append((relpaths, wait))
        return real(self, relpaths, wait)

    monkeypatch.setattr(report.ThumbnailPrefetch, "prefetch", spy)
    return calls


def _page(out) -> str:
    html = (out / "report.html").read_text(encoding="utf-8")
    return re.sub(r'<div class="muted">.*? process\(es\)</div>', "", html, count=1)


def test_duplicate_thumbnails_are_asked_for_first(tmp_path, monkeypatch):
    root = _dataset(tmp_path)
    calls = _asked(monkeypatch)
    scan(root, tmp_path / "early", jobs=2, fail_on="never", cache=False)
    early, wait = calls[0]
    assert not wait
    assert sorted(early) == ["cat/c0.jpg", "cat/c1.jpg", "cat/copy_of_c1.jpg", "dog/copy_of_c0.jpg"]
    assert calls[1][1]  # the page's own pass waits for all
    assert set(early) <= set(calls[1][0])  # every early one is one the page shows

    # The same page when nothing is asked for early.
    monkeypatch.setattr(report, "_duplicate_pictures", lambda context, samples: [])
    scan(root, tmp_path / "late", jobs=2, fail_on="never", cache=False)
    assert calls[2] == ([], False)
    assert "data:image/jpeg;base64," in _page(tmp_path / "early")
    assert _page(tmp_path / "early") == _page(tmp_path / "late")


def test_no_early_thumbnail_the_samples_could_push_out(tmp_path, monkeypatch):
    """Two classes of up to 8 samples: with a budget of 16 thumbnails the samples may take
    them all, so no duplicate's picture is asked for before the records are read."""
    monkeypatch.setattr(report, "MAX_THUMBNAILS", 16)
    calls = _asked(monkeypatch)
    scan(_dataset(tmp_path), tmp_path / "out", jobs=1, fail_on="never", cache=False)
    assert calls[0] == ([], False)
    monkeypatch.setattr(report, "MAX_THUMBNAILS", 17)
    scan(_dataset(tmp_path / "again"), tmp_path / "out2", jobs=1, fail_on="never", cache=False)
    assert len(calls[2][0]) == 1  # one thumbnail left after the most samples there can be
