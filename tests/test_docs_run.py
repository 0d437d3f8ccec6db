"""Every command block a user would paste (```sh in README.md and docs/*.md) runs here, as written,
against the bundled simulator, so the docs cannot drift from the tool.

A small harness of our own rather than a plugin: the blocks need a simulator running, its URL and
port put in for the docs' http://127.0.0.1:8776, a working directory with a jobs file, and exit
codes other than 0 declared per command; pytest-codeblocks and the like run blocks as they stand.

How a block runs: with bash, in a temporary directory holding `jobs.csv` (an inventory of five
snapshots the simulator holds, with new names added), the venv's `snaprelabel` first on PATH, and
SNAPRELABEL_ENDPOINT / SNAPRELABEL_TOKEN / SNAPRELABEL_PROJECT_ID pointing at a simulator whose
snapshots carry the names the examples use (db-prod-…, db-dev-…). Each command (lines joined at a
trailing backslash) must exit 0 unless the HTML comments right above the block say otherwise:

    <!-- no-test: REASON -->                  not run (a cloud, a Redis of your own, an install)
    <!-- before: COMMAND -->                  run first, hidden from the reader (must exit 0)
    <!-- expect: exit N for PREFIX -->        commands starting PREFIX exit N (no "for": the last)
    <!-- expect: output contains TEXT -->     the block's stdout or stderr holds TEXT

Blocks of `docker`/`kubectl` commands need a container runtime: not run here (the image's own
check runs them). `<!-- test-command -->` marks the test suite's own command.
"""

from __future__ import annotations

import csv
import os
import re
import shlex
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers import NO_METADATA, PROJECT, ROOT, TOKEN
from worker.simulator import SimulatorConfig, run_in_thread

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
DIRECTIVE = re.compile(r"^<!--\s*(.*?)\s*-->$")
CONTAINER_TOOLS = ("docker", "podman", "kubectl", "helm")
DOCS_PORT = "8776"  # the port the docs use for a simulator
# Snapshots whose names the examples match (plan's '^db-(?P<env>prod|dev)-'); the first five are
# the jobs file's.
SNAPSHOTS = [
    (f"{i:08x}-0000-4000-8000-{i:012x}", name, description)
    for i, (name, description) in enumerate([
        ("db-prod-01", "primary"), ("db-dev-02", ""), ("db-prod-03", ""), ("web-04", "front"),
        ("app-05", ""), ("db-test-06", ""), ("snap-000007", ""),
    ], start=1)
]


@dataclass
class Block:
    page: str
    line: int
    commands: list[str]
    skip: str | None = None
    before: list[str] = field(default_factory=list)
    exits: list[tuple[str | None, int]] = field(default_factory=list)  # (prefix or None: last, code)
    contains: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    def expected(self, index: int) -> int:
        command = self.commands[index].strip()
        for prefix, code in self.exits:
            if (prefix is None and index == len(self.commands) - 1) or (prefix and command.startswith(prefix)):
                return code
        return 0


def _commands(body: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", body)
    return [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def blocks() -> list[Block]:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if match[1] != "sh":
                continue
            line = text.count("\n", 0, match.start()) + 1
            block = Block(str(page.relative_to(ROOT)), line, _commands(match[2]))
            above = text[:match.start()].splitlines()
            while above and (directive := DIRECTIVE.match(above[-1].strip())):
                _directive(block, directive[1])
                above.pop()
            if any(shlex.split(c, comments=True)[:1] and shlex.split(c, comments=True)[0] in CONTAINER_TOOLS
                   for c in block.commands):
                block.skip = block.skip or "needs a container runtime"
            found.append(block)
    return found


def _directive(block: Block, text: str) -> None:
    if text.startswith("no-test"):
        block.skip = text.partition(":")[2].strip() or "no-test"
    elif text == "test-command":
        block.skip = "the test suite's own command"
    elif text.startswith("before:"):
        block.before.insert(0, text.partition(":")[2].strip())
    elif m := re.fullmatch(r"expect: exit (\d+)(?: for (.+))?", text):
        block.exits.append((m[2], int(m[1])))
    elif m := re.fullmatch(r"expect: output contains (.+)", text):
        block.contains.append(m[1])


BLOCKS = blocks()


@pytest.fixture(scope="module")
def docs_sim(tmp_path_factory):
    seed = tmp_path_factory.mktemp("seed") / "seed.csv"
    with seed.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["id", "name", "description"])
        out.writerows(SNAPSHOTS)
    handle = run_in_thread(SimulatorConfig(seed_file=seed, project_id=PROJECT, tokens=frozenset({TOKEN})))
    yield handle
    handle.stop()


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _script(block: Block, port: str) -> str:
    lines = ["trap 'kill $(jobs -p) 2>/dev/null' EXIT"]
    for command in block.before:
        lines += [command,
                  f'[ $? = 0 ] || {{ echo "docs-run: hidden setup failed: {_quoted(command)}" >&2; exit 97; }}']
    for index, command in enumerate(block.commands):
        expected = block.expected(index)
        lines += [command.replace(DOCS_PORT, port), "__rc=$?",
                  f'[ "$__rc" = {expected} ] || {{ echo "docs-run: exit $__rc, expected {expected}: '
                  f'{_quoted(command)}" >&2; exit 98; }}']
    return "\n".join(lines) + "\n"


def _quoted(command: str) -> str:
    return command[:100].replace("\\", "\\\\").replace('"', "'").replace("$", "\\$").replace("`", "'")


def test_every_block_either_runs_or_says_why_not():
    assert len(BLOCKS) >= 8
    for block in BLOCKS:
        assert block.commands, block.id
        assert block.skip is None or block.skip.strip(), block.id


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.id)
def test_the_block_runs_as_written(block, docs_sim, tmp_path):
    if block.skip:
        pytest.skip(block.skip)
    with (tmp_path / "jobs.csv").open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["ID", "Name", "Description", "new_name"])
        out.writerows([sid, name, description, f"renamed-{i}"] for i, (sid, name, description)
                      in enumerate(SNAPSHOTS[:5]))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNAPRELABEL_", "OS_", "HUAWEICLOUD_SDK_"))}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
               SNAPRELABEL_ENDPOINT=docs_sim.url, SNAPRELABEL_TOKEN=TOKEN, SNAPRELABEL_PROJECT_ID=PROJECT,
               SNAPRELABEL_RATE="0", SNAPRELABEL_LOG_FORMAT="console", **NO_METADATA)
    done = subprocess.run(["bash", "-c", _script(block, _free_port())], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{block.id}:\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr
    for text in block.contains:
        assert text in done.stdout + done.stderr, f"{block.id}: {text!r} not in the output"
