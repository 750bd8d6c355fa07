"""The record every check returns, and how it reads when it fails."""

from __future__ import annotations

from dataclasses import dataclass, field

# How many detail lines a rendered failure shows before "... and N more".
RENDER_LIMIT = 40


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict: ``details`` names the members, symbols or fields at fault."""

    name: str
    ok: bool
    summary: str
    details: list[str] = field(default_factory=list)

    def render(self, limit: int = RENDER_LIMIT) -> str:
        """Readable report: which check, what it found, then the details (diffs, names)."""
        head = f"[{'ok' if self.ok else 'FAIL'}] {self.name}: {self.summary}"
        lines = [head, *("    " + d for d in self.details[:limit])]
        if len(self.details) > limit:
            lines.append(f"    ... and {len(self.details) - limit} more")
        return "\n".join(lines)

    def require(self) -> None:
        """Raise AssertionError with the rendered report unless the check passed."""
        __tracebackhide__ = True
        if not self.ok:
            raise AssertionError(self.render())


def passed(name: str, summary: str, details: list[str] | None = None) -> CheckResult:
    return CheckResult(name, True, summary, details or [])


def failed(name: str, summary: str, details: list[str] | None = None) -> CheckResult:
    return CheckResult(name, False, summary, details or [])
