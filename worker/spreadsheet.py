"""CSV cells that a spreadsheet would run as formulas ("CSV injection", OWASP): a cell starting
with =, +, -, @, a tab or a carriage return is written with a single quote before it, which
spreadsheets read as "this is text". A server's error message or a snapshot's name is data, and
must never become a formula on an operator's machine.

The quote is taken off again when snaprelabel reads its own files back (`--resume`, `undo`, a
jobs file written by `undo` or `plan`), so every value round-trips exactly: a value that really
starts with a quote followed by one of those characters (or by another quote) gets one more
quote. Any other value is written as it is, so ordinary text is untouched:

    =1+2 -> '=1+2        'abc -> 'abc        '=x -> ''=x        '' -> '''        ' -> ''

An empty CSV cell means "not given" (unknown in a report, leave unchanged in a jobs file). A value
known to be empty (a previous description that was empty, a job that empties one) is written as
EMPTY_CELL, a lone quote: what a spreadsheet shows as an empty text cell. A value that really is a
lone quote is written '' so it does not read as empty.
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_QUOTED_STARTS = (*FORMULA_STARTS, "'")
EMPTY_CELL = "'"
# The first characters of every value to_spreadsheet changes: a value starting with any other
# (nearly every one) is written as it is after one look at its first character.
GUARDED_FIRST = frozenset(start[0] for start in _QUOTED_STARTS)


def to_spreadsheet(value: str) -> str:
    """The cell to write for a value."""
    if not value or value[0] not in GUARDED_FIRST:
        return value
    if value.startswith(FORMULA_STARTS) or (value.startswith("'") and (
            value == EMPTY_CELL or value[1:].startswith(_QUOTED_STARTS))):
        return "'" + value
    return value


def known_to_spreadsheet(value: str | None) -> str:
    """The cell for a value that may be known to be empty: None (not given) is an empty cell,
    "" is EMPTY_CELL."""
    if value is None:
        return ""
    return to_spreadsheet(value) if value else EMPTY_CELL


def from_spreadsheet(cell: str) -> str:
    """The value a cell written by to_spreadsheet (or known_to_spreadsheet) stands for."""
    if cell == EMPTY_CELL:
        return ""
    if cell.startswith("'") and cell[1:].startswith(_QUOTED_STARTS):
        return cell[1:]
    return cell
