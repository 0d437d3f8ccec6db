"""Validation rules, one behaviour each: what a user sees in the rejection."""

import sys
import unicodedata

import pytest

from worker.jobs import FIELD_LENGTHS, FORBIDDEN_CHARACTER_RE, Job, JobRules, RawRow, Rejection, Validator

PROJECT = "0123456789abcdef0123456789abcdef"
SID = "3d4e5f60-1a2b-4c3d-8e9f-0a1b2c3d4e5f"


def check(fields, rules=None, validator=None):
    validator = validator or Validator(rules or JobRules(default_project_id=PROJECT))
    return validator.validate(RawRow(7, fields))


def problems(result):
    assert isinstance(result, Rejection), result
    assert result.line == 7
    return {(p.field, p.code) for p in result.problems}


def test_a_valid_row_becomes_a_job_with_only_the_fields_set():
    job = check({"snapshot_id": SID, "name": "new"})
    assert isinstance(job, Job)
    assert job.project_id == PROJECT
    assert job.body() == {"snapshot": {"name": "new"}}


def test_every_field_of_a_row_lands_in_its_own_place_in_the_job():
    row = RawRow(7, {"snapshot_id": SID, "project_id": "fedcba9876543210fedcba9876543210",
                     "region": "cn-north-4", "name": "new name", "description": "new desc",
                     "previous_name": "old name", "previous_description": "old desc"}, ref="msg-1")
    assert Validator(JobRules(PROJECT)).validate(row) == Job(
        line=7, snapshot_id=SID, project_id="fedcba9876543210fedcba9876543210", name="new name",
        description="new desc", previous_name="old name", previous_description="old desc",
        ref="msg-1", region="cn-north-4")


@pytest.mark.parametrize("chars, ok", [(85, True), (86, False)])
def test_255_byte_limit_counts_utf8_bytes_of_chinese_text(chars, ok):
    result = check({"snapshot_id": SID, "name": "快" * chars, "description": "照" * chars})
    if ok:
        assert isinstance(result, Job)
    else:
        assert problems(result) == {("name", "too_long"), ("description", "too_long")}
        assert "258 bytes" in result.message


def test_255_ascii_bytes_pass_and_256_fail():
    assert isinstance(check({"snapshot_id": SID, "name": "a" * 255}), Job)
    assert problems(check({"snapshot_id": SID, "name": "a" * 256})) == {("name", "too_long")}


def test_huawei_current_profile_counts_characters():
    rules = JobRules(PROJECT, lengths=FIELD_LENGTHS["huawei-current"])
    assert isinstance(check({"snapshot_id": SID, "name": "n" * 64, "description": "d" * 85}, rules), Job)
    result = check({"snapshot_id": SID, "name": "n" * 65, "description": "d" * 86}, rules)
    assert problems(result) == {("name", "too_long"), ("description", "too_long")}
    assert "64" in result.message and "85" in result.message


def test_name_wins_over_display_name_and_display_name_is_used_alone():
    both = check({"snapshot_id": SID, "name": "winner", "display_name": "loser",
                  "description": "d1", "display_description": "d2"})
    assert (both.name, both.description) == ("winner", "d1")
    alone = check({"snapshot_id": SID, "display_name": "shown", "display_description": "dd"})
    assert (alone.name, alone.description) == ("shown", "dd")


@pytest.mark.parametrize("value, hint", [
    ("not-a-uuid", "is not a UUID"),
    ("{3d4e5f60-1a2b-4c3d-8e9f-0a1b2c3d4e5f}", "write it as 3d4e5f60-1a2b-4c3d-8e9f-0a1b2c3d4e5f"),
    ("3D4E5F60-1A2B-4C3D-8E9F-0A1B2C3D4E5F", "write it as 3d4e5f60-1a2b-4c3d-8e9f-0a1b2c3d4e5f"),
    ("3d4e5f601a2b4c3d8e9f0a1b2c3d4e5f", "write it as 3d4e5f60-1a2b-4c3d-8e9f-0a1b2c3d4e5f"),
])
def test_snapshot_id_must_be_a_canonical_uuid(value, hint):
    result = check({"snapshot_id": value, "name": "x"})
    assert problems(result) == {("snapshot_id", "invalid_uuid")}
    assert hint in result.message


def test_project_id_must_be_well_formed_and_present():
    assert problems(check({"snapshot_id": SID, "project_id": "prod", "name": "x"})) == {
        ("project_id", "invalid_project_id")}
    no_default = Validator(JobRules())
    assert problems(check({"snapshot_id": SID, "name": "x"}, validator=no_default)) == {
        ("project_id", "missing_field")}
    row_project = "fedcba9876543210fedcba9876543210"
    assert check({"snapshot_id": SID, "project_id": row_project, "name": "x"}).project_id == row_project


def test_at_least_one_of_name_or_description():
    assert problems(check({"snapshot_id": SID})) == {("name", "nothing_to_change")}


def test_autobk_prefix_is_rejected_unless_allowed():
    result = check({"snapshot_id": SID, "name": "autobk_snapshot_x"})
    assert problems(result) == {("name", "autobk_prefix")}
    assert "--allow-autobk-prefix" in result.message
    allowed = JobRules(PROJECT, allow_autobk_prefix=True)
    assert isinstance(check({"snapshot_id": SID, "name": "autobk_snapshot_x"}, allowed), Job)


@pytest.mark.parametrize("text", ["tab\there", "new\nline", "nul\x00", "bom\ufeff", "del\x7f"])
def test_control_characters_are_rejected(text):
    assert problems(check({"snapshot_id": SID, "description": text})) == {
        ("description", "control_character")}


def forbidden_by_category(ch):
    """The rule as jobs.py wrote it before its one regex: a character's Unicode category."""
    return unicodedata.category(ch) in {"Cc", "Cs", "Zl", "Zp"} or ch == "\ufeff"


def test_the_forbidden_characters_are_those_of_the_categories_at_every_code_point():
    # Every code point, by this Python's Unicode database: the regex and the categories can never
    # disagree on any character (a new Unicode version that moved one would fail here).
    everything = "".join(map(chr, range(sys.maxunicode + 1)))
    by_regex = {ord(ch) for ch in FORBIDDEN_CHARACTER_RE.findall(everything)}
    by_category = {cp for cp in range(sys.maxunicode + 1) if forbidden_by_category(chr(cp))}
    assert by_regex == by_category
    assert len(by_category) == 65 + 2048 + 3  # controls, surrogates, U+2028, U+2029, the BOM


@pytest.mark.parametrize("text, first", [("a\u2029b\x00", "U+2029"), ("\x85x", "U+0085"),
                                         ("ok\x1f\x7f", "U+001F"), ("\u2028", "U+2028")])
def test_the_first_forbidden_character_is_named(text, first):
    result = check({"snapshot_id": SID, "name": text})
    assert problems(result) == {("name", "control_character")}
    assert result.message == f"name: holds the control character {first}"


def test_undecodable_bytes_are_rejected_as_not_utf8():
    latin1 = b"caf\xe9".decode("utf-8", "surrogateescape")
    assert problems(check({"snapshot_id": SID, "name": latin1})) == {("name", "invalid_utf8")}


def test_the_second_row_of_the_same_snapshot_is_a_duplicate():
    validator = Validator(JobRules(PROJECT))
    assert isinstance(check({"snapshot_id": SID, "name": "a"}, validator=validator), Job)
    assert problems(check({"snapshot_id": SID, "name": "b"}, validator=validator)) == {
        ("snapshot_id", "duplicate")}
    # A UUID names one snapshot whatever the project a row gives: under another project it is
    # still the same snapshot, sent twice (it once was).
    assert problems(check({"snapshot_id": SID, "project_id": "f" * 32, "name": "c"},
                          validator=validator)) == {("snapshot_id", "duplicate")}


def test_a_rejected_row_does_not_count_as_seen():
    validator = Validator(JobRules(PROJECT))
    assert isinstance(check({"snapshot_id": SID, "name": "a" * 300}, validator=validator), Rejection)
    assert isinstance(check({"snapshot_id": SID, "name": "ok"}, validator=validator), Job)


def test_wrong_json_types_name_the_field():
    result = check({"snapshot_id": SID, "name": 42, "description": ["x"]})
    assert problems(result) == {("name", "wrong_type"), ("description", "wrong_type")}
    assert "must be text, got int" in result.message


def test_every_problem_of_a_row_is_reported_at_once():
    result = check({"snapshot_id": "bad", "project_id": "nope", "name": "autobk_snapshot_x"})
    assert problems(result) == {("snapshot_id", "invalid_uuid"), ("project_id", "invalid_project_id"),
                                ("name", "autobk_prefix")}
