"""Flags shared by the commands. Settings flags default to 'absent', so that only the flags a user
gives override the environment and the config file."""

from __future__ import annotations

import argparse
from typing import Any

from ..settings import Settings

S = argparse.SUPPRESS


def add_input(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="jobs file (CSV, TSV, JSON Lines, a JSON array or .xlsx), "
                                      "or - for stdin")
    parser.add_argument("--format", choices=("csv", "tsv", "jsonl", "json", "xlsx"),
                        help="input format (default: from the file extension; stdin: csv); "
                             "json and jsonl read a JSON array or JSON Lines, whichever it is")
    parser.add_argument("--column", action="append", default=[], metavar="TARGET=HEADER",
                        help="read a job field from another column, e.g. --column snapshot_id=ID "
                             "(targets: snapshot_id, project_id, name, description, "
                             "display_name, display_description, previous_name, "
                             "previous_description)")
    parser.add_argument("--delimiter", help="CSV field separator (default ',')")
    parser.add_argument("--sheet", help="the .xlsx workbook's sheet (default: the first)")
    parser.add_argument("--previous-name-column", metavar="HEADER",
                        help="the column holding each snapshot's current name, recorded in the "
                             "report for undo (same as --column previous_name=HEADER)")
    parser.add_argument("--previous-description-column", metavar="HEADER",
                        help="the same for the current description")


def add_rules(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("validation")
    group.add_argument("--project-id", dest="project_id", default=S,
                       help="project of rows without a project_id column (env SNAPRELABEL_PROJECT_ID)")
    group.add_argument("--allow-autobk-prefix", dest="allow_autobk_prefix", action="store_true",
                       default=S, help="allow target names starting autobk_snapshot_, and "
                                       "changes to backup-owned snapshots")
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
    add_auth(parser)
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


def add_safety(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "safety rails", "a safety stop records the rows not yet sent as not_attempted and exits 3")
    group.add_argument("--max-failure-rate", dest="max_failure_rate", type=float, default=S,
                       help="stop once more than this fraction of the rows sent failed "
                            "(default 0.5; 1 = never)")
    group.add_argument("--min-tasks", dest="min_tasks", type=int, default=S,
                       help="rows sent and finished before the failure rate is judged (default 100)")
    add_auth_failure_rail(group, "stop after this many rows in a row answered 401/403")
    group.add_argument("--canary", type=int, default=S, metavar="N",
                       help="send the first N valid rows alone; go on only if none of them failed")
    group.add_argument("--limit", type=int, default=S, metavar="N",
                       help="send only the first N valid rows; record the rest as not_attempted")


def add_auth_failure_rail(group: argparse._ArgumentGroup, what: str) -> None:
    """The run of 401/403 that stops a job (run) or a consumer (consume)."""
    group.add_argument("--max-consecutive-auth-failures", dest="max_consecutive_auth_failures",
                       type=int, default=S, help=f"{what} (default 10; 0 = off)")


def add_auth(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "credentials", "OS_* and HUAWEICLOUD_SDK_* variables work as usual; passwords and "
                       "secret keys come from the environment or a file, never a flag")
    group.add_argument("--auth-method", dest="auth_method", default=S,
                       choices=("auto", "token", "password", "aksk", "none"),
                       help="auto (default): --no-auth, else a token, else an access key, else a password")
    group.add_argument("--os-cloud", dest="os_cloud", default=S, metavar="NAME",
                       help="a cloud of clouds.yaml (env OS_CLOUD)")
    group.add_argument("--auth-url", dest="auth_url", default=S,
                       help="Keystone / IAM URL (env OS_AUTH_URL)")
    group.add_argument("--username", default=S, help="env OS_USERNAME")
    group.add_argument("--user-domain-name", dest="user_domain_name", default=S,
                       help="env OS_USER_DOMAIN_NAME (default: the domain with id 'default')")
    group.add_argument("--project-name", dest="project_name", default=S,
                       help="scope by name instead of id (env OS_PROJECT_NAME)")
    group.add_argument("--password-file", dest="password_file", default=S, metavar="FILE",
                       help="read the password from FILE (a container secret)")
    group.add_argument("--region", default=S,
                       help="catalog region (env OS_REGION_NAME); without an endpoint or auth URL, "
                            "the Huawei Cloud region: https://evs.REGION.myhuaweicloud.com and "
                            "https://iam.REGION.myhuaweicloud.com")
    group.add_argument("--interface", default=S, choices=("public", "internal", "admin"),
                       help="catalog interface (default public; env OS_INTERFACE)")
    group.add_argument("--access-key", dest="access_key", default=S,
                       help="AK for AK/SK signing (env HUAWEICLOUD_SDK_AK)")
    group.add_argument("--sk-file", dest="sk_file", default=S, metavar="FILE",
                       help="read the SK from FILE (a container secret)")


def add_report(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("report")
    group.add_argument("--report", metavar="FILE",
                       help="report file (default: snaprelabel-report-<UTC time>.csv)")
    group.add_argument("--report-format", dest="report_format", default=S, choices=("csv", "jsonl"))
    group.add_argument("--overwrite", action="store_true",
                       help="replace an existing report file")
    group.add_argument("--fsync", action=argparse.BooleanOptionalAction, default=S,
                       help="make every report row durable on disk before its sender takes the "
                            "next row (default on; --no-fsync for a scratch run)")


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
