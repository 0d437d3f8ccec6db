"""Flags shared by the commands. Settings flags default to 'absent', so that only the flags a user
gives override the environment and the config file."""

from __future__ import annotations

import argparse
from typing import Any

from ..settings import Settings

S = argparse.SUPPRESS


def add_input(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="jobs file (CSV, TSV or JSON Lines), or - for stdin")
    parser.add_argument("--format", choices=("csv", "tsv", "jsonl"),
                        help="input format (default: from the file extension; stdin: csv)")
    parser.add_argument("--column", action="append", default=[], metavar="TARGET=HEADER",
                        help="read a job field from another column, e.g. --column snapshot_id=ID "
                             "(targets: snapshot_id, project_id, name, description, "
                             "display_name, display_description, previous_name, "
                             "previous_description)")
    parser.add_argument("--delimiter", help="CSV field separator (default ',')")


def add_rules(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("validation")
    group.add_argument("--project-id", dest="project_id", default=S,
                       help="project of rows without a project_id column (env SNAPRELABEL_PROJECT_ID)")
    group.add_argument("--allow-autobk-prefix", dest="allow_autobk_prefix", action="store_true",
                       default=S, help="allow target names starting autobk_snapshot_")
    group.add_argument("--limits-profile", dest="limits_profile", default=S,
                       choices=("seed", "huawei-current"),
                       help="length limits: seed = 255 bytes (default); huawei-current = "
                            "name 64 / description 85 characters")


def add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE.toml",
                        help="settings file (see config/snaprelabel.example.toml)")
    group = parser.add_argument_group("output")
    group.add_argument("--log-level", dest="log_level", default=S,
                       choices=("debug", "info", "warning", "error"))
    group.add_argument("--log-format", dest="log_format", default=S,
                       choices=("auto", "json", "console"),
                       help="auto: JSON lines unless stdout is a terminal")


def add_api(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("API")
    group.add_argument("--endpoint", default=S,
                       help="base URL, e.g. https://evs.cn-north-4.myhuaweicloud.com")
    group.add_argument("--token", default=S,
                       help="X-Auth-Token (prefer the env var SNAPRELABEL_TOKEN: flags show in ps)")
    group.add_argument("--no-auth", dest="no_auth", action="store_true", default=S,
                       help="send no credentials (a local simulator started with --no-auth)")
    group.add_argument("--path-family", dest="path_family", default=S,
                       choices=("v2", "evs", "cinder-v3"),
                       help="v2: /v2/{project}/snapshots (default); evs: "
                            "/v2/{project}/cloudsnapshots; cinder-v3: /v3/{project}/snapshots")
    group.add_argument("--insecure", dest="verify_tls", action="store_false", default=S,
                       help="do not verify TLS certificates (warned on every run)")
    group.add_argument("--ca-bundle", dest="ca_bundle", default=S, help="CA certificates file")
    group.add_argument("--connect-timeout", dest="connect_timeout", type=float, default=S)
    group.add_argument("--read-timeout", dest="read_timeout", type=float, default=S)
    group.add_argument("--total-timeout", dest="total_timeout", type=float, default=S,
                       help="seconds for one request, connect to last byte (default 60)")
    pace = parser.add_argument_group("pace and retries")
    pace.add_argument("--rate", type=number_or_auto(float), default=S,
                      help="requests per second for the whole job, retries included (default 5; "
                           "0 = no limit; auto = find the API's quota from its 429 answers)")
    pace.add_argument("--concurrency", type=number_or_auto(int), default=S,
                      help="requests in flight (default auto: from the rate and the latency)")
    pace.add_argument("--max-attempts", dest="max_attempts", type=int, default=S,
                      help="attempts per row, the first included (default 6)")
    pace.add_argument("--backoff-base", dest="backoff_base", type=float, default=S,
                      help="seconds; attempt n waits up to base*2^(n-1) (default 0.5)")
    pace.add_argument("--backoff-cap", dest="backoff_cap", type=float, default=S,
                      help="longest single wait in seconds (default 30)")
    pace.add_argument("--job-deadline", dest="job_deadline", type=float, default=S,
                      help="seconds from a row's first attempt to its last (default 300)")
    pace.add_argument("--throttled-backoff", dest="throttled_backoff", type=float, default=S,
                      help="least wait after a 429 without Retry-After (default 2)")
    pace.add_argument("--grace", type=float, default=S,
                      help="seconds requests in flight may finish after SIGTERM/SIGINT (default 20)")


def add_report(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("report")
    group.add_argument("--report", metavar="FILE",
                       help="report file (default: snaprelabel-report-<UTC time>.csv)")
    group.add_argument("--report-format", dest="report_format", default=S, choices=("csv", "jsonl"))
    group.add_argument("--overwrite", action="store_true",
                       help="replace an existing report file")
    group.add_argument("--fsync", action="store_true", default=S,
                       help="make every report row durable on disk before counting it done")


def number_or_auto(kind: type) -> Any:
    """An argparse type: "auto", or a number of `kind`."""
    def parse(text: str) -> Any:
        if text.strip().lower() == "auto":
            return "auto"
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'an integer' if kind is int else 'a number'} or auto") from None

    return parse


def settings_flags(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in Settings.model_fields if hasattr(args, name)}
