"""Two families of failure, kept apart as tuxmake does.

``UserError``: the input is wrong (a bad option, a path that is not a kernel tree). The message
is one line that names the fix. ``InfraError``: the machinery broke (build failed, QEMU missing,
VM lost). In pytest it surfaces as an ERROR of the fixture, never as a test FAIL.
``PatchFailed``: a patch the suite carries does not fit a kernel inside the supported range:
the suite's own fault (an ERROR naming the patch, the version and the first failing file),
never a skip, so a run that asked for the variant cannot pass without it.

``KernelFault``: the kernel under test is at fault (it printed a report, or its own interface
failed: kheaders.ko did not load, the archive is missing, a mount of its file system failed).
Wherever it is raised, at boot, in a fixture or in a test body, it is the test's FAIL, never
an ERROR (report/verdict.py has the rule).
"""


class SuiteError(Exception):
    """Base of every error this package raises on purpose."""


class UserError(SuiteError):
    """Bad input: a one-line message that says what to change."""


class InfraError(SuiteError):
    """The harness or the machine failed: not a verdict on the kernel under test."""


class BuildFailed(InfraError):
    """make (or config merging) failed; the message carries the log path and tail."""


class PatchFailed(InfraError):
    """A carried variant patch does not apply to (or does not cover) this kernel version."""


class ConfigMismatch(InfraError):
    """Requested config symbols did not survive olddefconfig."""


class VMLost(InfraError):
    """The VM did not come up, or died; the message carries the console tail."""


class GuestTimeout(InfraError):
    """A command in the guest did not finish before its deadline."""


class KernelFault(Exception):
    """The kernel under test failed: a FAIL of every test it reaches, wherever it shows."""


class KernelInterfaceFailed(KernelFault):
    """A step that only the kernel can make succeed failed: ``modprobe kheaders``, its
    ``rmmod``, the debugfs mount, reading the archive. The message names the step and what
    the kernel said (the command's stderr, the errno)."""


class GuestCommandFailed(AssertionError):
    """A command whose result is the verdict (``Guest.expect``) exited non-zero: a test
    FAIL, with the command's output."""


class GuestStepFailed(InfraError):
    """A harness step in the guest (``Guest.run(check=True)``: mkdir, tar, mount of scratch
    space) exited non-zero: an ERROR, never a verdict on the kernel."""
