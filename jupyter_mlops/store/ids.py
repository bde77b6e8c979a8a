"""Record ids and row counts are SQLite integers: at most `MAX_INTEGER`.

A number above it can't name a record (so a lookup says "not found") and asking
for more rows than it is the same as asking for all of them (so a limit is
capped); either way the user gets an answer, never sqlite3's `OverflowError`.
"""

from __future__ import annotations

MAX_INTEGER = 2**63 - 1


def storable(number: int) -> bool:
    """Whether `number` fits a SQLite INTEGER column (and so may name a record)."""
    return -MAX_INTEGER - 1 <= number <= MAX_INTEGER


def row_count(number: int) -> int:
    """A LIMIT or OFFSET SQLite accepts: `number`, capped at `MAX_INTEGER`."""
    return min(number, MAX_INTEGER)
