"""Flags shared by the commands. Settings flags default to 'absent', so that only the flags a user
gives override the environment and the config file."""

from __future__ import annotations

import argparse
from typing import Any

from ..quota import Rate
from ..settings import Settings, default_text, env_names

S = argparse.SUPPRESS


def add_input(parser: argparse.ArgumentParser, optional: bool = False) -> None:
    parser.add_argument("input", nargs="?" if optional else None,
                        help="jobs file (CSV, TSV, JSON Lines, a JSON array or .xlsx), or - for stdin")
    parser.add_argument("--format", choices=("csv", "tsv", "jsonl", "json", "xlsx"),
                        help="input format (default: from the file extension; stdin: csv); "
                             "json and jsonl read a JSON array or JSON Lines, whichever it is")
    parser.add_argument("--column", action="append", default=[], metavar="TARGET=HEADER",
                        help="read a job field from another column, e.g. --column snapshot_id=ID "
                             "(targets: snapshot_id, project_id, region, name, description, "
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
    group.add_argument("--project-id", dest="project_id", default=S, help=help_for("project_id"))
    group.add_argument("--allow-autobk-prefix", dest="allow_autobk_prefix", action="store_true",
                       default=S, help=help_for("allow_autobk_prefix"))
    group.add_argument("--limits-profile", dest="limits_profile", default=S,
                       choices=("seed", "huawei-current"), help=help_for("limits_profile"))


def add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE.toml",
                        help="settings file (see config/snaprelabel.example.toml)")
    group = parser.add_argument_group("output")
    group.add_argument("--log-level", dest="log_level", default=S,
                       choices=("debug", "info", "warning", "error"), help=help_for("log_level"))
    group.add_argument("--log-format", dest="log_format", default=S,
                       choices=("auto", "json", "console"), help=help_for("log_format"))


def add_api(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("API")
    group.add_argument("--endpoint", default=S, help=help_for("endpoint"))
    group.add_argument("--token", default=S, help=help_for("token"))
    group.add_argument("--token-file", dest="token_file", default=S, metavar="FILE",
                       help=help_for("token_file"))
    group.add_argument("--no-auth", dest="no_auth", action="store_true", default=S,
                       help=help_for("no_auth"))
    group.add_argument("--path-family", dest="path_family", default=S,
                       choices=("v2", "evs", "cinder-v3"), help=help_for("path_family"))
    group.add_argument("--insecure", dest="verify_tls", action="store_false", default=S,
                       help=help_for("verify_tls"))
    group.add_argument("--ca-bundle", dest="ca_bundle", default=S, help=help_for("ca_bundle"))
    group.add_argument("--connect-timeout", dest="connect_timeout", type=float, default=S,
                       help=help_for("connect_timeout"))
    group.add_argument("--read-timeout", dest="read_timeout", type=float, default=S,
                       help=help_for("read_timeout"))
    group.add_argument("--total-timeout", dest="total_timeout", type=float, default=S,
                       help=help_for("total_timeout"))
    add_auth(parser)
    pace = parser.add_argument_group("pace and retries")
    pace.add_argument("--rate", type=rate_or_auto, default=S, help=help_for("rate"))
    pace.add_argument("--concurrency", type=number_or_auto(int), default=S,
                      help=help_for("concurrency"))
    pace.add_argument("--max-attempts", dest="max_attempts", type=int, default=S,
                      help=help_for("max_attempts"))
    pace.add_argument("--backoff-base", dest="backoff_base", type=float, default=S,
                      help=help_for("backoff_base"))
    pace.add_argument("--backoff-cap", dest="backoff_cap", type=float, default=S,
                      help=help_for("backoff_cap"))
    pace.add_argument("--job-deadline", dest="job_deadline", type=float, default=S,
                      help=help_for("job_deadline"))
    pace.add_argument("--throttled-backoff", dest="throttled_backoff", type=float, default=S,
                      help=help_for("throttled_backoff"))
    pace.add_argument("--grace", type=float, default=S, help=help_for("grace"))


def add_safety(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "safety rails", "a safety stop records the rows not yet sent as not_attempted and exits 3")
    group.add_argument("--max-failure-rate", dest="max_failure_rate", type=float, default=S,
                       help=help_for("max_failure_rate"))
    group.add_argument("--min-tasks", dest="min_tasks", type=int, default=S,
                       help=help_for("min_tasks"))
    add_auth_failure_rail(group)
    group.add_argument("--canary", type=int, default=S, metavar="N", help=help_for("canary"))
    group.add_argument("--limit", type=int, default=S, metavar="N", help=help_for("limit"))


def add_auth_failure_rail(group: argparse._ArgumentGroup) -> None:
    """The run of 401/403 that stops a job (run) or a consumer (consume)."""
    group.add_argument("--max-consecutive-auth-failures", dest="max_consecutive_auth_failures",
                       type=int, default=S, help=help_for("max_consecutive_auth_failures"))


def add_auth(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "credentials", "OS_* and HUAWEICLOUD_SDK_* variables work as usual; passwords and "
                       "secret keys come from the environment or a file, never a flag")
    group.add_argument("--auth-method", dest="auth_method", default=S,
                       choices=("auto", "token", "password", "application_credential", "aksk", "metadata",
                                "none"),
                       help=help_for("auth_method"))
    group.add_argument("--os-cloud", dest="os_cloud", default=S, metavar="NAME",
                       help=help_for("os_cloud"))
    group.add_argument("--auth-url", dest="auth_url", default=S, help=help_for("auth_url"))
    group.add_argument("--username", default=S, help=help_for("username"))
    group.add_argument("--user-domain-name", dest="user_domain_name", default=S,
                       help=help_for("user_domain_name"))
    group.add_argument("--project-name", dest="project_name", default=S,
                       help=help_for("project_name"))
    group.add_argument("--password-file", dest="password_file", default=S, metavar="FILE",
                       help=help_for("password_file"))
    group.add_argument("--application-credential-id", dest="application_credential_id", default=S,
                       metavar="ID", help=help_for("application_credential_id"))
    group.add_argument("--application-credential-name", dest="application_credential_name",
                       default=S, metavar="NAME", help=help_for("application_credential_name"))
    group.add_argument("--application-credential-secret-file",
                       dest="application_credential_secret_file", default=S, metavar="FILE",
                       help=help_for("application_credential_secret_file"))
    group.add_argument("--region", default=S, help=help_for("region"))
    group.add_argument("--interface", default=S, choices=("public", "internal", "admin"),
                       help=help_for("interface"))
    group.add_argument("--access-key", dest="access_key", default=S, help=help_for("access_key"))
    group.add_argument("--sk-file", dest="sk_file", default=S, metavar="FILE",
                       help=help_for("sk_file"))
    group.add_argument("--metadata-url", dest="metadata_url", default=S, metavar="URL",
                       help=help_for("metadata_url"))


def add_report(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("report")
    group.add_argument("--report", metavar="FILE",
                       help="report file (default: snaprelabel-report-<UTC time>.csv)")
    group.add_argument("--report-format", dest="report_format", default=S, choices=("csv", "jsonl"),
                       help=help_for("report_format"))
    group.add_argument("--overwrite", action="store_true",
                       help="replace an existing report file")
    group.add_argument("--fsync", action=argparse.BooleanOptionalAction, default=S,
                       help=help_for("fsync"))


def rate_or_auto(text: str) -> Rate | str:
    """An argparse type: "auto", or a rate in any of its spellings (600/min)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return Rate.parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a rate (10, 10/s, 600/min, 36000/h, 240/20s) or auto") from None


def a_rate(text: str) -> Rate:
    """An argparse type: a rate in any of its spellings."""
    try:
        return Rate.parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a rate (10, 10/s, 600/min, 36000/h, 240/20s)") from None


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


def help_for(name: str) -> str:
    """A setting's flag help, made from its description in the model (worker/settings.py), where
    the text is written once; its default and the ecosystem's variables are appended."""
    field = Settings.model_fields[name]
    if not field.description:
        raise ValueError(f"setting {name} has no description in worker/settings.py")
    notes = []
    if field.default is not None and not isinstance(field.default, bool):
        notes.append(f"default {default_text(name)}")
    if theirs := env_names(name)[1:]:
        notes.append(f"env {', '.join(theirs)}")
    text = f"{field.description} ({'; '.join(notes)})" if notes else field.description
    return text.replace("%", "%%")  # argparse formats help with %


def settings_flags(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in Settings.model_fields if hasattr(args, name)}
