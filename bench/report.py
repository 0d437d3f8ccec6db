"""The pieces of bench/RESULTS.md: a section per scenario, Markdown tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Section:
    title: str
    intro: str
    body: str
    verdict: tuple[bool, str] | None = None  # (target met, the figure against the target)
    figures: dict[str, Any] = field(default_factory=dict)

    def markdown(self) -> str:
        parts = [f"## {self.title}", "", self.intro, "", self.body]
        if self.verdict is not None:
            met, text = self.verdict
            parts += ["", f"**{'Met' if met else 'NOT met'}**: {text}"]
        return "\n".join(parts) + "\n"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
