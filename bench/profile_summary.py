"""Summarise a py-spy `--format raw` profile (collapsed stacks): the share of samples whose
stack holds each function (inclusive) and the leaf functions (self)."""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>[^ ]+) \((?P<file>[^:)]+)(?::\d+)?\)$")


def _name(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    for marker in ("/worker/", "/site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['func']} ({path})"


def summarise(path: Path, top: int = 25) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]]]:
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_name(f) for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        total += n
        for name in set(frames):
            inclusive[name] += n
        if frames:
            leaf[frames[-1]] += n
    share = lambda c: [(k, v / total) for k, v in c.most_common(top)]  # noqa: E731
    return total, share(inclusive), share(leaf)


if __name__ == "__main__":
    total, inclusive, leaf = summarise(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 25)
    print(f"{total} samples\n-- inclusive")
    for name, s in inclusive:
        print(f"{s:6.1%}  {name}")
    print("-- self")
    for name, s in leaf:
        print(f"{s:6.1%}  {name}")
