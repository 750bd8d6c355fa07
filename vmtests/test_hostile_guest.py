"""A hostile guest: what a kernel built from a stranger's series may try from inside its VM.

It must not get a key that logs into any guest (its own included: the login key's private
half lives only in the suite's memory, boot/sshkeys.py), and it must reach no service on the
host's loopback through QEMU's user network (10.0.2.2 is the host): not a listener the test
opens, not a guest's forwarded SSH port. That the netdev is closed is shown by its
configuration (the running QEMU's own command line), and by traffic to this machine only.
"""

from __future__ import annotations

import io
import os
import socket
from pathlib import Path

import paramiko
import pytest

from kheaders_suite.boot.vm import netdevs
from kheaders_suite.plugin.options import Settings
from kheaders_suite.session.guest import Guest

HOST_FROM_GUEST = "10.0.2.2"  # QEMU's user network: the host's loopback, unless restricted
CONNECT = """
import socket, sys
for port in map(int, sys.argv[1:]):
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect(("10.0.2.2", port))
        print(port, "connected")
    except OSError as exc:
        print(port, "failed", type(exc).__name__)
    finally:
        s.close()
"""
# What a private key file holds, whatever its kind (OpenSSH, PEM).
KEY_MARK = "PRIVATE KEY"


def qemu_args(port: int) -> list[str]:
    """The command line of the QEMU that forwards 127.0.0.1:``port``."""
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in args if a]
        if words and "qemu-system" in Path(words[0]).name and any(
                f"127.0.0.1:{port}-" in w for w in words):
            return words
    raise AssertionError(f"no QEMU process forwards 127.0.0.1:{port}")


@pytest.mark.variants("sysfs")
def test_the_guests_network_is_restricted_by_its_netdev(guest: Guest) -> None:
    ssh = netdevs(qemu_args(guest.vm.spec.port)).get("ssh", {})
    assert ssh.get("type") == "user", ssh
    assert ssh.get("restrict") == "on", f"the guest's user netdev is open: {ssh}"
    assert ssh.get("hostfwd", "").startswith("tcp:127.0.0.1:"), ssh


@pytest.mark.variants("sysfs")
def test_the_guest_reaches_no_service_on_the_hosts_loopback(guest: Guest) -> None:
    """A listener on the host's 127.0.0.1, and the guest's own forwarded SSH port (every
    xdist guest's port is a listener there alike): the guest connects to neither."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        listener.setblocking(False)
        ports = (listener.getsockname()[1], guest.vm.spec.port)
        result = guest.run(("python3", "-c", CONNECT, *map(str, ports)),
                           timeout=60 * guest.scale).check()
        try:
            listener.accept()[0].close()
            reached = True
        except BlockingIOError:
            reached = False
    lines = result.stdout.split("\n")
    assert not [line for line in lines if line.endswith(" connected")], result.stdout
    assert len([line for line in lines if " failed " in line]) == len(ports), result.stdout
    assert not reached, "the host's listener accepted a connection from the guest"


def _public(text: str) -> bytes | None:
    """The public half of an OpenSSH private key ``text``, or None if it is not one."""
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text)).asbytes()
        except (paramiko.SSHException, ValueError):
            continue
    return None


@pytest.mark.variants("sysfs")
def test_the_guest_finds_no_login_key(guest: Guest, suite_settings: Settings) -> None:
    """Every file holding a private key that the guest can find in the VMs' homes in the
    cache (as the guest sees them: on x86_64 the host's home is mapped in) and its own home:
    none is this VM's login key."""
    cache = guest.vm.spec.guest_path(suite_settings.cache_dir / "vng-home")
    places = [p for p in (cache, "/root") if guest.run(("test", "-d", p)).rc == 0]
    found = guest.run(("grep", "-rlsI", "--", KEY_MARK, *places),
                      timeout=300 * guest.scale).stdout.split()
    login = guest.vm.keys.login.asbytes()
    readable = {path: guest.run(("cat", path)).stdout for path in found}
    leaked = [path for path, text in readable.items() if _public(text) == login]
    assert not leaked, f"the guest read this VM's login key from {leaked}"
    own = guest.vm.home
    assert os.path.isdir(own), own  # the check looked while the VM's home existed
