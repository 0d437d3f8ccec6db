"""The job manifest beside the report (`<report>.manifest.json`): what ran, on which input, with
which settings, and how it ended. A reader tells a complete report from a cut one by its status
and row count, without parsing the report; --resume checks the input's fingerprint against it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel, ConfigDict

from . import __version__
from .results import Outcome
from .stamps import now_iso

if TYPE_CHECKING:
    from .engine import Summary

FORMAT_VERSION = 1


def manifest_path(report_path: str) -> str:
    return f"{report_path}.manifest.json"


def file_digest(path: str, limit: int | None = None) -> tuple[int, str] | None:
    """(size, sha256 hex) of a regular file, or of its first `limit` bytes; None for stdin or a
    pipe."""
    if path == "-" or not os.path.isfile(path):
        return None
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while limit is None or size < limit:
            chunk = f.read(1 << 20 if limit is None else min(1 << 20, limit - size))
            if not chunk:
                break
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class _Input(_Strict):
    path: str | None = None
    size: int | None = None
    sha256: str | None = None


class _Report(_Strict):
    format: str | None = None


class _Resumed(_Strict):
    runs: int = 1
    first_started_at: str | None = None


class _Shape(_Strict):
    """The fields a resume reads, with their types (anything else may be anything)."""

    input: _Input = _Input()
    report: _Report = _Report()
    settings: dict[str, Any] = {}
    started_at: str | None = None
    resumed: _Resumed | None = None


def read_manifest(report_path: str) -> dict[str, Any] | None:
    """The manifest beside a report, or None when it is missing, unreadable or damaged (a field
    a resume reads is of the wrong type)."""
    try:
        with open(manifest_path(report_path), encoding="utf-8") as f:
            data = json.load(f)
        _Shape.model_validate(data)  # a list, or a field of the wrong type: ValidationError
    except (OSError, ValueError, RecursionError):  # ValidationError is a ValueError
        return None
    return cast(dict[str, Any], data)  # a dict: _Shape just said so


def job_figures(summary: Summary, exit_code: int) -> dict[str, Any]:
    """What the manifest records of a job that ended: the summary's figures, every outcome's
    count (zeros included, so a reader need not know the outcomes), why it stopped early."""
    return {
        **summary.as_fields(),
        "counts": {str(outcome): summary.counts[outcome] for outcome in Outcome},
        "rows_per_s": round(summary.rows / summary.elapsed, 2) if summary.elapsed > 0 else 0.0,
        "stop_reason": summary.stopped,
        "exit_code": exit_code,
    }


@dataclass
class Manifest:
    report_path: str
    report_format: str
    input_path: str
    settings: dict[str, Any]
    status: str = "running"  # running | finished | interrupted | stopped | failed
    started_at: str = field(default_factory=now_iso)
    input_digest: tuple[int, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # summary figures once the job ends
    resumed: dict[str, Any] | None = None  # --resume: the runs so far and what was skipped
    links: dict[str, Any] = field(default_factory=dict)  # other reports of the job (run --retry-from)

    def as_dict(self) -> dict[str, Any]:
        size, sha = self.input_digest or (None, None)
        return {
            "format_version": FORMAT_VERSION,
            "tool": "snaprelabel",
            "tool_version": __version__,
            "status": self.status,
            "input": {"path": self.input_path, "name": os.path.basename(self.input_path),
                      "size": size, "sha256": sha},
            "report": {"path": self.report_path, "format": self.report_format},
            "settings": self.settings,
            "started_at": self.started_at,
            **({"resumed": self.resumed} if self.resumed else {}),
            **self.links,
            **self.extra,
        }

    def write(self) -> None:
        """Atomically: a reader never sees half a manifest. The temporary file is made with
        O_EXCL and a random name (mode 0600): a link planted beside the report is never followed."""
        path = manifest_path(self.report_path)
        fd, tmp = tempfile.mkstemp(prefix=f"{os.path.basename(path)}.", suffix=".tmp",
                                   dir=os.path.dirname(path) or ".")
        try:
            with open(fd, "w", encoding="utf-8") as f:
                json.dump(self.as_dict(), f, ensure_ascii=False, indent=2)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)  # replaces a link at `path` itself, never its target
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def finish(self, status: str, figures: dict[str, Any]) -> None:
        report_digest = file_digest(self.report_path)
        self.status = status
        self.extra = {
            "finished_at": now_iso(),
            **figures,
            "report_sha256": report_digest[1] if report_digest else None,
            "report_size": report_digest[0] if report_digest else None,
        }
        self.write()
