"""The reader of queue messages against any bytes a producer may XADD: it never raises, and what
it lets through (to the results stream, the dead letters, the local report) is UTF-8 text."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import PROJECT
from worker.jobs import Job, JobRules, Rejection, Validator
from worker.queue.streams import JOB_FIELDS, TRACE_FIELDS, result_entry, row_from_message
from worker.report import ReportWriter
from worker.results import Outcome, from_job, from_rejection

UUID = "00000000-0000-4000-8000-000000000000"
names = st.sampled_from([*JOB_FIELDS, *TRACE_FIELDS]).map(str.encode) | st.binary(max_size=12)
values = (st.sampled_from([UUID.encode(), PROJECT.encode(), b"7", "²".encode(), b""])
          | st.binary(max_size=300)
          | st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass"))
          | st.integers(0, 70_000).map(lambda n: b"x" * n))
# What redis-py hands the consumer: bytes decoded with surrogateescape (redis_link.client_for).
messages = st.dictionaries(names, values, min_size=1, max_size=12).map(
    lambda m: {k.decode("utf-8", "surrogateescape"): v.decode("utf-8", "surrogateescape")
               for k, v in m.items()})


@settings(max_examples=500, deadline=None)
@given(messages)
def test_any_message_is_read_as_a_job_or_a_rejection_of_text(message):
    row = row_from_message(message, "ref")
    item = row if isinstance(row, Rejection) else Validator(JobRules(PROJECT)).validate(row)
    result = from_job(item, Outcome.APPLIED) if isinstance(item, Job) else from_rejection(item, PROJECT)
    entry = result_entry(result, "1-0", "c", message, str)
    for key, value in entry.items():
        (key + value).encode("utf-8")  # strict: no byte that is not UTF-8 goes on
    assert sum(len(k) + len(v) for k, v in entry.items()) < 20_000
    report = ReportWriter(os.devnull)  # UTF-8, strict
    report.write_batch([result])
    report.close()
