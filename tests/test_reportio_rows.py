"""reportio.CsvRows writes the bytes csv.writer writes, joining plain rows itself."""

from __future__ import annotations

import csv
import io
import itertools

from audit.reportio import CsvRows

HOSTILE = [
    "",
    "plain",
    "a,comma",
    'a "quote"',
    "new\nline",
    "carriage\rreturn",
    " leading space",
    "trailing space ",
    "<b>html</b> & $x",
    "back\\slash\\xff",
    "tab\there",
    "\u2028separator",
    "\x1b[31mred",
    "ünïcödé,",
    "'single'",
]
NUMBERS = [0, -3, 1795822262517251397, 0.1, 0.678, 74.0, 1e-7, 123456789.125, float("nan"), True]


def _both(rows, columns):
    expected, got = io.StringIO(newline=""), io.StringIO(newline="")
    reference = csv.writer(expected)
    reference.writerow(columns)
    reference.writerows(rows)
    writer = CsvRows(got, columns)
    for row in rows:
        writer.writerow(row)
    return expected.getvalue(), got.getvalue(), writer


def test_same_bytes_as_csv_writer_on_hostile_values():
    values = HOSTILE + NUMBERS + [None]
    columns = ("a", "b", "c")
    rows = [tuple(combo) for combo in itertools.product(values, repeat=3)]
    expected, got, _ = _both(rows, columns)
    assert got == expected
    assert got.count("\r\n") >= len(rows) + 1


def test_plain_rows_are_joined_and_others_left_to_csv(monkeypatch):
    columns = ("path", "n", "x")
    plain = [("class_0/a.png", 3, 0.5), ("b", 1795822262517251397, 74.0)]
    quoted = [("a,b.png", 1, 0.1), ('q"uote', 2, 0.2), ("n\nl", 3, 0.3), ("c", None, 1.0)]
    got = io.StringIO(newline="")
    writer = CsvRows(got, columns)
    calls: list = []
    monkeypatch.setattr(writer, "_csv", _Spy(writer._csv, calls))
    for row in plain:
        writer.writerow(row)
    assert calls == []  # joined here: csv.writer not called
    for row in quoted:
        writer.writerow(row)
    assert calls == quoted  # a field to quote (or None): left to csv.writer
    expected = io.StringIO(newline="")
    csv.writer(expected).writerows([columns, *plain, *quoted])
    assert got.getvalue() == expected.getvalue()


class _Spy:
    def __init__(self, real, calls):
        self.real, self.calls = real, calls

    def writerow(self, row):
        self.calls.append(row)
        return self.real.writerow(row)
