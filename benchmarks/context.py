"""What every scenario is given: the mode, where to write, and a progress log."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["RunContext"]


@dataclass
class RunContext:
    """Options of one harness run.

    Attributes:
        quick: shrink every scenario (smoke run, well under 2 minutes for all six).
        repeats: independent repetitions of each measurement (min/median/max over them).
        out_dir: where results (JSON, Markdown, PNG) go.
        work_dir: scratch space (journals, spooled payloads) removed after the run.
    """

    quick: bool
    repeats: int
    out_dir: Path
    work_dir: Path
    started: float = field(default_factory=time.monotonic)

    @property
    def mode(self) -> str:
        return "quick" if self.quick else "full"

    def pick(self, full: int, quick: int) -> int:
        """The full or the quick figure of a parameter."""
        return quick if self.quick else full

    def log(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[bench {elapsed:6.1f}s] {message}", file=sys.stderr, flush=True)

    def journal(self, label: str) -> str:
        """A private journal path for one Storage (never the user's default journal)."""
        path = self.work_dir / "journals"
        path.mkdir(parents=True, exist_ok=True)
        return str(path / f"{label}-{time.monotonic_ns()}.sqlite")
