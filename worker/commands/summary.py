"""`snaprelabel summary REPORT`: what happened in a job, read from its report (worker/summary.py)."""

from __future__ import annotations

import argparse
import json
import sys

from .. import exitcodes
from ..errors import ConfigError
from ..html_report import write_html
from ..journal import JournalError
from ..sources import same_file
from ..summary import render_text, summarise
from .parser import Parser


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    parser = sub.add_parser("summary", help="summarise a report: outcomes, errors, rate, latency, what next",
                            description="Read a report (finished, still being written, or resumed) "
                                        "and print its counts by outcome, error code and project, "
                                        "retries and throttling, latency percentiles, the rate over "
                                        "time and the command that re-runs the failed rows. "
                                        "Exit 0, or 2 when the report is unusable.")
    parser.add_argument("report", help="a snaprelabel report (CSV or JSON Lines)")
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="text for a person (default), json for a script")
    parser.add_argument("--html", metavar="FILE",
                        help="also write a self-contained HTML job report (plots as inline SVG)")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    try:
        summary = summarise(args.report)
    except JournalError as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {args.report}: {exc.strerror or exc}") from None
    if summary.rows == 0 and (summary.manifest or {}).get("tool") != "snaprelabel":
        raise ConfigError(f"{args.report} holds no report rows: not a snaprelabel report")
    if args.html:
        if same_file(args.report, args.html):
            raise ConfigError(f"--html {args.html} is the report itself: give the HTML file another name")
        write_html(summary, args.html)
    if args.format == "json":
        json.dump(summary.as_dict(), sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
        sys.stdout.write(render_text(summary, unicode=encoding.startswith("utf")))
    return exitcodes.OK
