"""The rows of the CSV files people write by hand: prompts and batch jobs."""

from __future__ import annotations

import csv
from pathlib import Path

Row = dict[str, str]


def read_rows(path: str | Path) -> tuple[list[str], list[tuple[int, Row]]]:
    """A CSV's header and its rows that are not blank, each with its line number;
    names and values stripped, a byte-order mark ignored.

    Raises ``OSError``, ``UnicodeDecodeError`` or ``csv.Error`` for the caller to word.
    """
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [(name or "").strip() for name in reader.fieldnames or []]
        rows = [(reader.line_num, row) for row in reader]
    stripped = [(n, {k.strip(): (v or "").strip() for k, v in r.items() if k}) for n, r in rows]
    return header, [(n, r) for n, r in stripped if any(r.values())]
