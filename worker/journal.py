"""The report read back as the job's journal: which input lines already have a final row.

The rule every reader follows (--resume, `undo`, anyone parsing a report): rows are appended in
the order they finish, and a line's answer is its *final* row (applied, unchanged, rejected,
failed) when it has one, else its last row. `--resume` never runs a line that has a final row, so
a line has at most one; an `interrupted` row of an earlier run stays in the report, superseded.

A crash can leave the last record half written (a "torn tail"). CSV fields may hold newlines, so
the tail is found by parsing whole records, not by looking for the last newline: everything after
the last complete, well-formed record is cut off before anything is appended.

CSV cells that a spreadsheet would run as formulas carry a quote (worker/spreadsheet.py): the
records give the values back exactly as they were before the quote was added. An empty CSV cell of
a value column (a name, a description) is None, "not known"; a lone quote is "" (known empty), as
`null` and "" in JSON Lines.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from .manifest import file_digest
from .report import COLUMNS, LEGACY_COLUMNS, VALUE_COLUMNS, ReportWriter, create_new
from .results import Outcome
from .spreadsheet import from_spreadsheet

_OUTCOMES = {str(o): o for o in Outcome}


class JournalError(Exception):
    """The report cannot serve as a journal (not a report, or damaged before its last record)."""


class LineSet:
    """A set of input line numbers as a bitmap: 1 bit a line, 125 kB for a million lines."""

    def __init__(self) -> None:
        self._bits = bytearray()
        self._count = 0

    def add(self, line: int) -> None:
        index, mask = line >> 3, 1 << (line & 7)
        bits = self._bits
        if index >= len(bits):
            bits.extend(bytes(max(index + 1 - len(bits), len(bits))))  # grow geometrically
        if not bits[index] & mask:
            bits[index] |= mask
            self._count += 1

    def __contains__(self, line: object) -> bool:
        if not isinstance(line, int) or line < 0:
            return False
        index = line >> 3
        return index < len(self._bits) and bool(self._bits[index] & (1 << (line & 7)))

    def __len__(self) -> int:
        return self._count


@dataclass
class Journal:
    path: str
    fmt: str
    final: LineSet = field(default_factory=LineSet)  # lines that have their final row
    counts: Counter[Outcome] = field(default_factory=Counter)  # final rows by outcome
    records: int = 0  # complete records, final or not
    complete_size: int = 0  # bytes up to the end of the last complete record
    torn_bytes: int = 0  # bytes after it: a record cut by a crash

    def repair(self) -> None:
        """Cut the torn tail off, so the next record starts on a line of its own."""
        if self.torn_bytes:
            with open(self.path, "r+b") as f:
                f.truncate(self.complete_size)
                f.flush()
                os.fsync(f.fileno())
            self.torn_bytes = 0


@dataclass(frozen=True, slots=True)
class Record:
    """One complete report row: its fields as written (text; JSON Lines keep their types)."""

    fields: dict[str, Any]
    line: int
    outcome: Outcome


def detect_format(path: str) -> str:
    """A report's format from its first byte: JSON Lines start with '{'."""
    with open(path, "rb") as f:
        head = f.read(1)
    return "jsonl" if head == b"{" else "csv"


def read_journal(path: str, fmt: str) -> Journal:
    """Reads the whole report (streamed). Raises JournalError, OSError."""
    journal = Journal(path, fmt)
    for record, end in _records(path, fmt, journal):
        journal.records += 1
        journal.complete_size = end
        if record.outcome.final:
            if record.line in journal.final:
                raise JournalError(
                    f"{path}: line {record.line} of the input has two final rows: "
                    "this report was not written by --resume alone"
                )
            journal.final.add(record.line)
            journal.counts[record.outcome] += 1
    journal.torn_bytes = os.path.getsize(path) - journal.complete_size
    return journal


def iter_records(path: str, fmt: str) -> Iterator[Record]:
    """The complete records of a report, in file order (a torn tail is left out)."""
    for record, _ in _records(path, fmt, Journal(path, fmt)):
        yield record


def _records(path: str, fmt: str, journal: Journal) -> Iterator[tuple[Record, int]]:
    """(record, byte offset of its end) for each complete record; sets journal.complete_size
    past the CSV header. A malformed record is a torn tail when nothing valid follows it, else
    damage (JournalError)."""
    with open(path, "rb") as f:
        parse = _csv_records if fmt == "csv" else _jsonl_records
        bad: str | None = None
        for item in parse(f, path, journal):
            if isinstance(item, str):
                bad = bad or item
                continue
            if bad is not None:
                raise JournalError(f"{path}: {bad}, and complete records follow it: the report "
                                   "is damaged, not just cut off")
            yield item


def _csv_records(f: IO[bytes], path: str, journal: Journal) -> Iterator[tuple[Record, int] | str]:
    offset = 0
    last_line_ended = True

    def lines() -> Iterator[str]:
        nonlocal offset, last_line_ended
        for raw in f:
            offset += len(raw)
            last_line_ended = raw.endswith(b"\n")
            yield raw.decode("utf-8", "surrogateescape")

    reader = csv.reader(lines(), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error:
        yield "the header is unreadable"
        return
    if not last_line_ended:
        yield "the header is cut off"  # a crash right after the report was created
        return
    if header not in (list(COLUMNS), list(LEGACY_COLUMNS)):
        raise JournalError(
            f"{path}: its header is not the one this version of snaprelabel writes "
            f"({', '.join(header[:6])}…): not a snaprelabel report, or from another version"
        )
    journal.complete_size = offset
    width = len(header)
    where = 1
    while True:
        where = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield f"the record at line {where} is unreadable ({exc})"
            continue  # the reader starts afresh on the next line
        record = (_record({name: _csv_value(name, cell) for name, cell in zip(header, row, strict=True)})
                  if len(row) == width and last_line_ended else None)
        yield (record, offset) if record else f"the record at line {where} is incomplete"


def _jsonl_records(f: IO[bytes], path: str, journal: Journal) -> Iterator[tuple[Record, int] | str]:
    offset = 0
    for number, raw in enumerate(f, start=1):
        offset += len(raw)
        record = None
        if raw.endswith(b"\n"):
            try:
                obj = json.loads(raw)
            except ValueError:
                obj = None
            if isinstance(obj, dict):
                record = _record(obj)
        yield (record, offset) if record else f"the record at line {number} is incomplete"


def _csv_value(name: str, cell: str) -> str | None:
    if not cell and name in VALUE_COLUMNS:
        return None
    return from_spreadsheet(cell)


def _record(fields: dict[str, Any]) -> Record | None:
    """A well-formed row, or None (cut off, or not a report row)."""
    label = fields.get("outcome")
    outcome = _OUTCOMES.get(label) if isinstance(label, str) else None
    try:
        line = int(fields.get("line"))  # type: ignore[arg-type]  # anything: int() says if it is a line
    except (TypeError, ValueError):
        return None
    if outcome is None or line < 0 or not fields.get("finished_at"):
        return None
    return Record(fields, line, outcome)


def lock_report(path: str) -> int:
    """An exclusive lock on an existing report for the life of the job, so that two runs never
    write the same report. The kernel drops it when the process dies, kill -9 included. Returns
    the locked file descriptor: close it to unlock."""
    return _claim(os.open(path, os.O_RDWR), path)


def _claim(fd: int, path: str) -> int:
    """Locks the open report (JournalError when another process holds it); where flock does not
    exist (not POSIX), the descriptor is returned unlocked."""
    try:
        import fcntl
    except ImportError:
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise JournalError(f"{path}: another snaprelabel process is writing this report") from None
    return fd


def open_report(path: str, fmt: str, redact: Callable[[str], str] = str, *, resume: bool = False,
                overwrite: bool = False, fsync: bool = False, lock: int | None = None
                ) -> tuple[ReportWriter, int]:
    """The job's report, locked before a byte of it is truncated or written, so that two runs
    started together never spoil each other's report: a new one is created with O_EXCL (mode
    0600), so exactly one of them creates it and the other gets one clear error; an existing one
    (--overwrite, --resume) is truncated or appended to only once it is locked.

    `lock`: the descriptor lock_report already holds on the report (--resume reads the journal
    under it). Returns the writer and the locked descriptor: close it once the job's last word
    (the manifest) is written. Raises JournalError (the report is another run's) or OSError."""
    if lock is None:
        try:
            fd = create_new(path)
        except FileExistsError:
            if not (resume or overwrite):
                raise JournalError(f"report {path} already exists (another snaprelabel run created "
                                   "it just now?): pass --overwrite to replace it, or --resume to "
                                   "continue it") from None
            fd = os.open(path, os.O_RDWR)
        lock = _claim(fd, path)
        owned = True
    else:
        owned = False
    try:
        if not resume:
            os.ftruncate(lock, 0)
        writer = ReportWriter(path, fmt, redact, append=resume, fsync=fsync, fd=os.dup(lock))
    except BaseException:
        if owned:
            os.close(lock)
        raise
    return writer, lock


def check_fingerprint(report_path: str, manifest: dict[str, Any] | None, input_path: str,
                      digest: tuple[int, str] | None, report_format: str) -> None:
    """Refuse (JournalError) to resume a report that does not belong to this jobs file.

    The manifest's digest covers the jobs file as it was when the report was begun. A file that
    has only grown since (rows appended: its first `size` bytes keep that digest) is the same job
    with more rows: the lines the report answers are the same lines."""
    if manifest is None:
        raise JournalError(
            f"{report_path}: its manifest ({report_path}.manifest.json) is missing or unreadable, "
            f"so nothing shows that it belongs to {input_path}; restore it, or start a new "
            "report (another --report, or --overwrite)"
        )
    recorded = manifest.get("input") or {}
    fmt = (manifest.get("report") or {}).get("format")
    if not recorded.get("sha256"):
        raise JournalError(
            f"{report_path} was written from stdin, which cannot be fingerprinted: it cannot be "
            "resumed (save the jobs to a file to use --resume)"
        )
    size, sha = recorded.get("size"), recorded["sha256"]
    if digest is None or ((size, sha) != digest and not _grew(input_path, size, sha, digest)):
        now = f"sha256 {digest[1][:12]}…, {digest[0]} bytes" if digest else "not a regular file"
        raise JournalError(
            f"{report_path} belongs to another jobs file: it was written for "
            f"{recorded.get('path')} (sha256 {recorded['sha256'][:12]}…, {recorded.get('size')} "
            f"bytes), and {input_path} is {now}. Resume with the same, unchanged jobs file, "
            "or write a new report"
        )
    if fmt and fmt != report_format:
        raise JournalError(f"{report_path} is a {fmt} report: pass --report-format {fmt} to resume it")


def _grew(path: str, size: int | None, sha: str, digest: tuple[int, str]) -> bool:
    """Whether the file at `path` (now `digest`) is the one fingerprinted, with bytes appended."""
    return size is not None and digest[0] > size and file_digest(path, limit=size) == (size, sha)
