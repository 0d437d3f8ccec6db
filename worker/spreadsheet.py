"""CSV cells that a spreadsheet would run as formulas ("CSV injection", OWASP): a cell starting
with =, +, -, @, a tab or a carriage return is written with a single quote before it, which
spreadsheets read as "this is text". A server's error message or a snapshot's name is data, and
must never become a formula on an operator's machine.

The quote is taken off again when snaprelabel reads its own files back (`--resume`, `undo`, a
jobs file written by `undo` or `plan`), so every value round-trips exactly: a value that really
starts with a quote followed by one of those characters (or by another quote) gets one more
quote. Any other value is written as it is, so ordinary text is untouched:

    =1+2 -> '=1+2        'abc -> 'abc        '=x -> ''=x        '' -> '''
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_QUOTED_STARTS = (*FORMULA_STARTS, "'")


def to_spreadsheet(value: str) -> str:
    """The cell to write for a value."""
    if value.startswith(FORMULA_STARTS) or (value.startswith("'") and value[1:].startswith(_QUOTED_STARTS)):
        return "'" + value
    return value


def from_spreadsheet(cell: str) -> str:
    """The value a cell written by to_spreadsheet stands for."""
    if cell.startswith("'") and cell[1:].startswith(_QUOTED_STARTS):
        return cell[1:]
    return cell
