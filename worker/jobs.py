"""The relabel job: one input row, validated before anything is sent.

Rules come from the API seed (255 UTF-8 bytes per field, name wins over display_name) and from
what keeps a bulk change safe (no autobk_ prefix, no control characters, no duplicates).
"""

from __future__ import annotations

import hashlib
import re
from array import array
from dataclasses import dataclass, field
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from .backup import AUTOBK_PREFIX, is_backup_name

# The columns of a jobs file as this tool writes them (plan, undo); sources/columns.py lists the
# other spellings it reads.
JOB_COLUMNS = ("snapshot_id", "project_id", "region", "name", "description", "previous_name",
               "previous_description")
# What `plan` writes: one project at one endpoint, so no region.
ONE_REGION_JOB_COLUMNS = tuple(c for c in JOB_COLUMNS if c != "region")
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
UUID_ANY_CASE_RE = re.compile(r"\{?[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\}?")
# A region name as catalogs and Huawei endpoints spell them (cn-north-4, RegionOne, sim-1).
REGION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# Keystone and Huawei IAM project ids are 32 hex digits; some deployments use dashed UUIDs.
PROJECT_RE = re.compile(r"[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Characters that are invisible or break logs and consoles; a name holding one is a mistake: the
# Unicode categories Cc (controls), Cs (surrogates), Zl and Zp (line and paragraph separators), and
# the byte order mark. One search of the value, not unicodedata.category a character: the set of
# Cc and Cs is fixed by Unicode's stability policy, Zl and Zp have held one character each since
# Unicode 1.1, and tests/test_validation.py walks every code point against the categories.
FORBIDDEN_CHARACTER_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\ufeff]")


@dataclass(frozen=True)
class FieldLengths:
    """Field length limits of a target API (`--limits-profile`). Every profile also keeps the
    seed's 255-byte ceiling."""

    name: str
    name_chars: int | None = None
    description_chars: int | None = None
    max_bytes: int = 255


FIELD_LENGTHS = {
    # The seed and the Huawei SDK model: 255 UTF-8 bytes per field.
    "seed": FieldLengths("seed"),
    # Huawei's current online docs: name <= 64 characters, description <= 85 characters.
    "huawei-current": FieldLengths("huawei-current", name_chars=64, description_chars=85),
}


@dataclass(frozen=True)
class JobRules:
    default_project_id: str | None = None
    allow_autobk_prefix: bool = False
    lengths: FieldLengths = FIELD_LENGTHS["seed"]


@dataclass(slots=True)
class Job:
    """A valid job, ready to send. Only the fields that are set go into the PUT body."""

    line: int
    snapshot_id: str
    project_id: str
    name: str | None
    description: str | None
    previous_name: str | None = None
    previous_description: str | None = None
    ref: Any = None  # the source's handle for this job (a queue message id), opaque here
    region: str | None = None  # the row's region column; None: the job's region

    def body(self) -> dict[str, dict[str, str]]:
        snapshot = {}
        if self.name is not None:
            snapshot["name"] = self.name
        if self.description is not None:
            snapshot["description"] = self.description
        return {"snapshot": snapshot}


@dataclass(slots=True)
class Problem:
    field: str | None
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


@dataclass(slots=True)
class RawRow:
    """A row as read from a source: its starting line and the values of the known columns."""

    line: int
    fields: dict[str, Any]
    ref: Any = None


@dataclass(slots=True)
class Rejection:
    """A row that will not be sent, with every reason found."""

    line: int
    fields: dict[str, Any]
    problems: list[Problem] = field(default_factory=list)
    ref: Any = None

    @property
    def code(self) -> str:
        return self.problems[0].code if self.problems else "invalid_row"

    @property
    def message(self) -> str:
        return "; ".join(str(p) for p in self.problems)


def _fail(code: str, message: str, **ctx: Any) -> PydanticCustomError:
    return PydanticCustomError(code, message, ctx or None)


def _check_text(value: str, field_name: str, lengths: FieldLengths) -> str:
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise _fail("invalid_utf8", "not valid UTF-8 text (is the file in another encoding?)") from None
    if (forbidden := FORBIDDEN_CHARACTER_RE.search(value)) is not None:  # the first one
        raise _fail("control_character", f"holds the control character U+{ord(forbidden[0]):04X}")
    if size > lengths.max_bytes:
        raise _fail("too_long", f"{size} bytes in UTF-8, the limit is {lengths.max_bytes}")
    max_chars = lengths.name_chars if field_name == "name" else lengths.description_chars
    if max_chars is not None and len(value) > max_chars:
        raise _fail(
            "too_long", f"{len(value)} characters, the '{lengths.name}' limit is {max_chars}"
        )
    return value


class JobFields(BaseModel):
    """Pydantic schema of one row once display_* precedence is applied."""

    model_config = ConfigDict(strict=True, extra="ignore")

    snapshot_id: str
    project_id: str
    region: str | None = None
    name: str | None = None
    description: str | None = None
    previous_name: str | None = None
    previous_description: str | None = None

    @field_validator("snapshot_id")
    @classmethod
    def _uuid(cls, value: str) -> str:
        value = value.strip()
        if UUID_RE.fullmatch(value):
            return value
        if not value:
            raise _fail("missing_field", "is empty")
        if UUID_ANY_CASE_RE.fullmatch(value):
            canonical = value.strip("{}").lower()
            if len(canonical) == 32:
                canonical = "-".join(
                    (canonical[:8], canonical[8:12], canonical[12:16], canonical[16:20], canonical[20:])
                )
            raise _fail(
                "invalid_uuid",
                f"'{value}' is not in the canonical form; write it as {canonical}",
            )
        raise _fail("invalid_uuid", f"'{_preview(value)}' is not a UUID")

    @field_validator("project_id")
    @classmethod
    def _project(cls, value: str) -> str:
        value = value.strip()
        if not PROJECT_RE.fullmatch(value):
            raise _fail(
                "invalid_project_id",
                f"'{_preview(value)}' is not a project id (32 lower-case hex digits)",
            )
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not REGION_RE.fullmatch(value):
            raise _fail("invalid_region", f"'{_preview(value)}' is not a region name such as cn-north-4")
        return value

    @field_validator("name", "description")
    @classmethod
    def _text(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        assert info.context is not None and info.field_name is not None  # given by Validator
        rules: JobRules = info.context["rules"]
        _check_text(value, info.field_name, rules.lengths)
        if (
            info.field_name == "name"
            and value.startswith(AUTOBK_PREFIX)
            and not rules.allow_autobk_prefix
        ):
            raise _fail(
                "autobk_prefix",
                f"starts with '{AUTOBK_PREFIX}', the prefix of backup-created snapshots "
                "(pass --allow-autobk-prefix to allow it)",
            )
        return value


    @field_validator("previous_name")
    @classmethod
    def _not_backup_owned(cls, value: str | None, info: ValidationInfo) -> str | None:
        # The current name is known (an inventory's Name column, a previous_name column): a
        # backup's snapshot is left alone, as --skip-unchanged leaves one it finds in the listing.
        assert info.context is not None  # given by Validator
        if is_backup_name(value) and not info.context["rules"].allow_autobk_prefix:
            raise _fail("backup_owned",
                        f"the snapshot belongs to a backup (its current name starts '{AUTOBK_PREFIX}'): "
                        "left alone (pass --allow-autobk-prefix to relabel it)")
        return value


def _preview(value: str, limit: int = 60) -> str:
    """The value as it can be shown: invisible characters (NUL, BOM, ...) escaped."""
    value = value if len(value) <= limit else value[:limit] + "…"
    if value.isprintable():
        return value
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
                   for ch in value)


def _pick(fields: dict[str, Any], primary: str, alias: str) -> Any:
    """The seed: name and display_name mean the same; if both are given, name wins."""
    value = fields.get(primary)
    return fields.get(alias) if value is None else value


def raw_texts(fields: dict[str, Any]) -> dict[str, str | None]:
    """A raw row's values where they are text, by the rules of `Validator` (display_* stands in
    for an absent name or description): how a row that is not a valid job is recorded."""

    def text(value: Any) -> str | None:
        return value if isinstance(value, str) else None

    return {
        "snapshot_id": text(fields.get("snapshot_id")),
        "project_id": text(fields.get("project_id")),
        "region": text(fields.get("region")),
        "name": text(_pick(fields, "name", "display_name")),
        "description": text(_pick(fields, "description", "display_description")),
        "previous_name": text(fields.get("previous_name")),
        "previous_description": text(fields.get("previous_description")),
    }


class SeenSet:
    """Remembers snapshot ids as 64-bit digests in an open-addressing hash table
    held in one array of 8-byte slots: 16-32 bytes a row. (A Python set of ints took 78 bytes a
    row: docs/design.md#duplicate-check.) A 64-bit digest makes a false duplicate
    among a million rows about a 1-in-40-million chance."""

    def __init__(self) -> None:
        self._slots = array("Q", bytes(8 * 1024))  # 0 marks a free slot
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, snapshot_id: str) -> bool:
        """True when the id is new."""
        key = int.from_bytes(hashlib.blake2b(snapshot_id.encode(), digest_size=8).digest(), "big") or 1
        if not self._insert(self._slots, key):
            return False
        self._count += 1
        if 2 * self._count > len(self._slots):  # keep it at most half full: short probes
            bigger = array("Q", bytes(16 * len(self._slots)))
            for old in self._slots:
                if old:
                    self._insert(bigger, old)
            self._slots = bigger
        return True

    @staticmethod
    def _insert(slots: array[int], key: int) -> bool:
        """Linear probing from the key's low bits (a digest: already well mixed)."""
        mask = len(slots) - 1
        i = key & mask
        while True:
            held = slots[i]
            if held == key:
                return False
            if not held:
                slots[i] = key
                return True
            i = (i + 1) & mask


class Validator:
    """Turns raw rows into jobs or rejections, remembering ids to catch duplicates."""

    def __init__(self, rules: JobRules) -> None:
        self.rules = rules
        self._context = {"rules": rules}
        self._seen = SeenSet()

    def validate(self, row: RawRow) -> Job | Rejection:
        fields = row.fields
        # Sources give None for "not given" (an empty CSV cell); a JSON "" is an explicit value.
        data = {
            "snapshot_id": _none_if_blank(fields.get("snapshot_id")),
            "project_id": _none_if_blank(fields.get("project_id")) or self.rules.default_project_id,
            "region": _none_if_blank(fields.get("region")),
            "name": _pick(fields, "name", "display_name"),
            "description": _pick(fields, "description", "display_description"),
            "previous_name": fields.get("previous_name"),
            "previous_description": fields.get("previous_description"),
        }
        problems: list[Problem] = []
        if data["snapshot_id"] is None:
            problems.append(Problem("snapshot_id", "missing_field", "is missing"))
            data["snapshot_id"] = ""
        if data["project_id"] is None:
            problems.append(
                Problem("project_id", "missing_field", "not in the row and no --project-id given")
            )
            data["project_id"] = ""
        if data["name"] is None and data["description"] is None:
            problems.append(
                Problem("name", "nothing_to_change", "neither a name nor a description is given")
            )
        try:
            model = JobFields.model_validate(
                {k: v for k, v in data.items() if v is not None}, context=self._context
            )
        except ValidationError as exc:
            reported = {p.field for p in problems}
            for err in exc.errors(include_url=False):
                where = str(err["loc"][0]) if err["loc"] else None
                if where in reported:
                    continue
                code = err["type"] if err["type"] not in ("string_type",) else "wrong_type"
                message = err["msg"]
                if code == "wrong_type":
                    message = f"must be text, got {type(err['input']).__name__}"
                problems.append(Problem(where, code, message))
            return Rejection(row.line, fields, problems, row.ref)
        if problems:
            return Rejection(row.line, fields, problems, row.ref)
        # By id alone: a snapshot's UUID names one snapshot whatever the project a row gives, so
        # the same id under two projects is one snapshot sent twice (or a wrong project).
        if not self._seen.add(model.snapshot_id):
            return Rejection(
                row.line,
                fields,
                [Problem("snapshot_id", "duplicate", "this snapshot already appears earlier in the job")],
                row.ref,
            )
        # By position, in the order of Job's fields (keywords cost 0.5 µs more a row).
        return Job(row.line, model.snapshot_id, model.project_id, model.name, model.description,
                   model.previous_name, model.previous_description, row.ref, model.region)


def _none_if_blank(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value
