"""What a command run in the guest gives back, however it ran (the agent's channel or an SSH
exec channel): a small result record, and the two ways a failed command is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

from kheaders_suite.errors import InfraError


class GuestCommandFailed(AssertionError):
    """A command whose result is the verdict (``Guest.expect``) exited non-zero: a test
    FAIL, with the command's output."""


class GuestStepFailed(InfraError):
    """A harness step in the guest (``Guest.run(check=True)``: mkdir, tar, mount of scratch
    space) exited non-zero: an ERROR, never a verdict on the kernel."""


@dataclass(frozen=True)
class CommandResult:
    command: str
    rc: int
    stdout: str
    stderr: str
    duration: float

    def check(self) -> CommandResult:
        """A harness step must succeed: GuestStepFailed (an ERROR) if it did not."""
        __tracebackhide__ = True
        if self.rc != 0:
            raise GuestStepFailed(f"harness step failed in the guest:\n{self.describe()}")
        return self

    def expect(self, why: str) -> CommandResult:
        """The kernel must let this succeed: GuestCommandFailed (a FAIL) saying ``why``."""
        __tracebackhide__ = True
        if self.rc != 0:
            raise GuestCommandFailed(f"{why}\n{self.describe()}")
        return self

    def describe(self) -> str:
        return (f"$ {self.command}\nexit {self.rc} after {self.duration:.2f}s\n"
                f"--- stdout ---\n{self.stdout[-3000:]}\n--- stderr ---\n{self.stderr[-3000:]}")
