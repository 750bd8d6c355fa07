"""The suite's guest init (guestinit, the default) gives a test the guest virtme-ng's init
gives it: the same kernel file systems at the same places, the same writable directories, the
same name and address. The run's guest is compared with one booted with the other init.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import pytest

from kheaders_suite.plugin.options import Settings, boot_options
from kheaders_suite.records import KernelBuild
from kheaders_suite.session.connect import boot
from kheaders_suite.session.guest import Guest

# Where the tests (and bcc, modprobe, the sweeps) find the kernel's file systems.
KERNEL_FS = ("/proc", "/sys", "/sys/kernel/debug", "/sys/kernel/tracing", "/dev", "/dev/pts",
             "/dev/shm", "/run")
# Where they write: writable in the guest (its own tmpfs or overlay), never on the host.
WRITABLE = ("/tmp", "/var/tmp", "/etc", "/run", "/dev/shm", "/usr/local")
DESCRIBE = """
import json, os, socket, sys
mounts = {}
for line in open("/proc/self/mountinfo"):
    left, _, right = line.partition(" - ")
    mounts[left.split()[4]] = right.split()[0]
def writable(path):
    probe = os.path.join(path, ".kheaders-init-probe")
    try:
        open(probe, "w").close(); os.unlink(probe); return True
    except OSError:
        return False
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.connect(("10.0.2.2", 9))
print(json.dumps({
    "fstype": {p: mounts.get(p) for p in sys.argv[1].split(",")},
    "writable": {p: writable(p) for p in sys.argv[2].split(",")},
    "hostname": socket.gethostname(), "address": udp.getsockname()[0],
    "fd links": [p for p in ("/dev/fd/0", "/proc/self/fd/0") if os.path.exists(p)],
}))
"""


def describe(guest: Guest) -> dict[str, Any]:
    out = guest.run(("python3", "-c", DESCRIBE, ",".join(KERNEL_FS), ",".join(WRITABLE)),
                    check=True)
    described: dict[str, Any] = json.loads(out.stdout)
    return described


def differences(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """'key: ours != theirs' for every leaf that differs."""
    found = []
    for key in sorted(set(ours) | set(theirs)):
        a, b = ours.get(key), theirs.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found += [f"{key} {k}: {a.get(k)} != {b.get(k)}" for k in sorted(set(a) | set(b))
                      if a.get(k) != b.get(k)]
        elif a != b:
            found.append(f"{key}: {a} != {b}")
    return found


@pytest.mark.variants("sysfs")
def test_both_inits_give_the_tests_the_same_guest(guest: Guest, kernel_build: KernelBuild,
                                                  suite_settings: Settings) -> None:
    other = "vng" if suite_settings.guest_init == "suite" else "suite"
    opts = dataclasses.replace(boot_options(suite_settings), guest_init=other)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    log = suite_settings.results_dir / "consoles" / f"{kernel_build.arch}-init-{other}-{worker}.log"
    second = boot(kernel_build, opts, log, lambda message: None)
    try:
        theirs = describe(second)
    finally:
        second.close()
    ours = describe(guest)
    assert all(ours["writable"].values()), ours
    assert ours["fstype"]["/sys/kernel/debug"] == "debugfs", ours
    diff = differences(ours, theirs)
    assert not diff, (f"the guest with --guest-init {suite_settings.guest_init} differs from "
                      f"the one with {other} ({log}): {diff}")
