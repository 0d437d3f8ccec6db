"""The readers fuzzed (Hypothesis): whatever bytes come in, from a file or a stream, the only
exception is HeaderError (the whole input unusable: one line, exit 2); every item is a row or
a rejection, in line order, that the report can hold and give back; every line of a structured
file ends as exactly one of them; and valid rows keep their values exactly."""

from __future__ import annotations

import csv
import io
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from worker.jobs import Job, JobRules, RawRow, Rejection, Validator
from worker.journal import iter_records
from worker.report import ReportWriter
from worker.results import Outcome, from_job, from_rejection
from worker.sources import HeaderError, InputSpec, open_rows
from worker.spreadsheet import to_spreadsheet

PROJECT = "0123456789abcdef0123456789abcdef"
# About 2 s a test here; no example database left in the worktree.
FUZZ = settings(max_examples=300, deadline=None, database=None)
FORMATS = ["csv", "tsv", "jsonl", "json"]

# Text a name may hold: no control, surrogate or line/paragraph separator characters (the
# validator rejects those), at most 60 characters (at most 240 bytes: under the 255-byte limit).
NAMES = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="\ufeff"),
                min_size=1, max_size=60).filter(lambda s: s.strip() and not s.startswith("autobk_snapshot_"))
UUIDS = st.uuids(version=4).map(str)
# Bytes that look like jobs files more often than random ones do.
PIECES = st.sampled_from([b"snapshot_id", b"name", b",", b";", b"\t", b'"', b"\n", b"\r\n", b"\r", b"{", b"}",
                          b"[", b"]", b'":"', b"\\ud800", b"\xff\xfe", b"\xef\xbb\xbf", b"\x00", b"'=",
                          b"11111111-1111-4111-8111-111111111111", "名".encode()])
JOBS_BYTES = st.one_of(st.binary(max_size=400),
                       st.lists(PIECES | st.binary(max_size=8), max_size=60).map(b"".join))


def read_all(path: str, fmt: str, data: bytes, stream: bool) -> list[RawRow | Rejection]:
    """Every item of the input, read from a regular file or from stdin (a stream)."""
    if not stream:
        Path(path).write_bytes(data)
        with open_rows(InputSpec(path, fmt)) as rows:
            return list(rows)
    saved = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BufferedReader(io.BytesIO(data)))  # type: ignore[assignment]  # a stdin of our bytes
    try:
        with open_rows(InputSpec("-", fmt)) as rows:
            return list(rows)
    finally:
        sys.stdin = saved


def answers(items: list[RawRow | Rejection]) -> Iterator[Job | Rejection]:
    validator = Validator(JobRules(default_project_id=PROJECT))
    for item in items:
        yield item if isinstance(item, Rejection) else validator.validate(item)


def round_trip_report(directory: str, items: list[Job | Rejection]) -> list[int]:
    """The report's lines for these answers, written and read back as --resume reads them."""
    report = f"{directory}/r.csv"
    writer = ReportWriter(report, "csv")
    writer.write_batch([from_rejection(i, PROJECT) if isinstance(i, Rejection)
                        else from_job(i, Outcome.DRY_RUN) for i in items])
    writer.close()
    return [record.line for record in iter_records(report, "csv")]


@FUZZ
@given(data=JOBS_BYTES, fmt=st.sampled_from(FORMATS), stream=st.booleans())
# Found by this test: the --column suggestion copied a header's line break into the message.
@example(data=b'"\x01\n', fmt="csv", stream=False)
def test_any_bytes_give_rows_and_rejections_or_one_header_error(data, fmt, stream):
    with tempfile.TemporaryDirectory() as directory:
        try:
            items = read_all(f"{directory}/jobs", fmt, data, stream)
        except HeaderError as exc:
            assert str(exc).encode("utf-8") and "\n" not in str(exc)
            return
        assert all(isinstance(i, (RawRow, Rejection)) for i in items)
        lines = [i.line for i in items]
        assert lines == sorted(lines) and len(set(lines)) == len(lines) and all(line >= 1 for line in lines)
        answered = list(answers(items))
        for item in answered:
            if isinstance(item, Rejection):
                assert item.problems and item.message.encode("utf-8")
        assert round_trip_report(directory, answered) == lines


# JSON values as a producer might get them wrong: any text (lone surrogates included, written as
# \\ud800 escapes), numbers, nesting deeper than the parser goes, keys given twice.
JSON_VALUES = st.one_of(
    st.text(max_size=10).map(json.dumps), st.integers().map(str), st.just("null"), st.just("true"),
    st.integers(1, 3000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(0xD800, 0xDFFF).map(lambda code: f'"a\\u{code:04x}"'),
)
KEYS = st.sampled_from(["snapshot_id", "id", "name", "display_name", "description", "新名称", "project_id", "x"])
JSON_OBJECTS = st.lists(st.tuples(KEYS, JSON_VALUES | UUIDS.map(json.dumps)), max_size=5).map(
    lambda pairs: "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in pairs) + "}")


@FUZZ
@given(objects=st.lists(JSON_OBJECTS, min_size=1, max_size=12), cut=st.integers(0, 40), stream=st.booleans(),
       array=st.booleans())
def test_json_that_is_structured_but_wrong_gives_rows_and_rejections(objects, cut, stream, array):
    """Every line of JSON Lines ends as one item (a JSON array: one per element until it
    breaks), whatever it holds, cut short at its end or not; the report holds them all."""
    text = ("[" + ",\n".join(objects) + "]") if array else "\n".join(objects) + "\n"
    data = text.encode("utf-8")[:len(text.encode("utf-8")) - cut]
    with tempfile.TemporaryDirectory() as directory:
        items = read_all(f"{directory}/jobs.jsonl", "jsonl", data, stream)
        if not array:
            lines = data.split(b"\n")
            assert [i.line for i in items] == [n for n, line in enumerate(lines, start=1) if line.strip()]
        answered = list(answers(items))
        assert round_trip_report(directory, answered) == [i.line for i in items]


def csv_rows(draw_rows: list[list[str]]) -> bytes:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(draw_rows)
    return text.getvalue().encode()


CELLS = st.text(st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)), max_size=20)


@FUZZ
@given(rows=st.lists(st.lists(CELLS, min_size=1, max_size=4), max_size=20), stream=st.booleans())
def test_every_line_of_a_structured_csv_ends_as_exactly_one_row_or_rejection(rows, stream):
    """Rows of any width, cells of any text (quotes, commas, formulas), one line each: every
    line that is not blank gives one item, on its own line number."""
    data = csv_rows([["snapshot_id", "name", "description"], *rows])
    with tempfile.TemporaryDirectory() as directory:
        items = read_all(f"{directory}/jobs.csv", "csv", data, stream)
    expected = [n for n, row in enumerate(rows, start=2) if any(cell.strip() for cell in row)]
    assert [i.line for i in items] == expected


@FUZZ
@given(jobs=st.lists(st.tuples(UUIDS, NAMES, NAMES | st.none()), max_size=15, unique_by=lambda j: j[0]),
       fmt=st.sampled_from(["csv", "jsonl"]), stream=st.booleans())
def test_valid_rows_keep_their_values_exactly(jobs, fmt, stream):
    """Names with quotes, commas, formulas, leading spaces, any script: what was written (as
    undo and plan write it: formula-like cells quoted) is what is sent."""
    if fmt == "csv":
        data = csv_rows([["snapshot_id", "name", "description"]]
                        + [[sid, to_spreadsheet(name), to_spreadsheet(desc or "")]
                           for sid, name, desc in jobs])
    else:
        data = b"".join(json.dumps({"snapshot_id": sid, "name": name, "description": desc}).encode() + b"\n"
                        for sid, name, desc in jobs)
    with tempfile.TemporaryDirectory() as directory:
        answered = list(answers(read_all(f"{directory}/jobs.{fmt}", fmt, data, stream)))
    assert all(isinstance(a, Job) for a in answered), [a for a in answered if isinstance(a, Rejection)]
    assert [(a.snapshot_id, a.name, a.description) for a in answered] == [
        (sid, name, desc if fmt == "jsonl" or desc else None) for sid, name, desc in jobs]
