"""The documentation a user reads: a README that stays short, links that lead somewhere, and
settings described once (in the model), from which the flags' help and docs/settings.md are made."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT
from worker import ecosystem
from worker.cli import build_parser
from worker.commands.options import help_for
from worker.settings import Settings, env_names
from worker.settings_doc import COMMAND

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)
CODE = re.compile(r"^```.*?^```|`[^`\n]*`", re.MULTILINE | re.DOTALL)


def test_docs_settings_md_is_what_the_model_makes():
    made = subprocess.run([sys.executable, "-m", "worker.settings_doc"], cwd=ROOT,
                          capture_output=True, check=True).stdout.decode("utf-8")
    written = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    assert written == made, f"docs/settings.md is stale: run `{COMMAND}`"


def test_every_setting_has_a_description():
    missing = [name for name, field in Settings.model_fields.items() if not field.description]
    assert not missing, f"describe these in worker/settings.py: {missing}"


def commands(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                yield from commands(command)


def test_every_settings_flag_has_the_models_help():
    checked = set()
    for command in commands(build_parser()):
        command.format_help()  # a stray % in a description would raise here
        for action in command._actions:
            if action.default is argparse.SUPPRESS and action.dest in Settings.model_fields:
                assert action.help == help_for(action.dest), (command.prog, action.option_strings)
                checked.add(action.dest)
    assert {"rate", "claim_idle", "redis_url", "fsync", "max_consecutive_auth_failures"} <= checked


def test_the_ecosystem_variables_listed_are_the_ones_read():
    samples = {"OS_AUTH_TYPE": "password", "OS_INSECURE": "true"}
    for name in Settings.model_fields:
        for var in env_names(name)[1:]:
            assert name in ecosystem.env_values({var: samples.get(var, "x")}), (name, var)
    listed = {var for name in Settings.model_fields for var in env_names(name)}
    assert set(ecosystem.ENV_SETTINGS) <= listed


def test_readme_orients_in_at_most_200_lines():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines: move reference text to docs/"


def test_readme_test_command_is_where_ci_reads_it():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    marker = lines.index("<!-- test-command -->")  # .ci/run: the second line after the marker
    assert lines[marker + 1] == "```sh"
    assert "python -m pytest -q" in lines[marker + 2]


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to '-', repeats numbered."""
    found: set[str] = set()
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)
    for heading in HEADING.findall(text):
        plain = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
        slug = re.sub(r"[^\w\- ]", "", plain.lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in found:
            n += 1
            candidate = f"{slug}-{n}"
        found.add(candidate)
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_lead_to_a_file_and_heading_that_exist(page):
    text = CODE.sub("", page.read_text(encoding="utf-8"))
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no file {file.relative_to(ROOT)}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading with anchor #{anchor} in {file.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)
