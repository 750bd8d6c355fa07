"""What a guest must not reach (issue 13): the host's files, and the network beyond loopback.

A kernel under test is someone's patch; its guest shares the host's root (x86_64) or a root
filesystem in the cache (arm64) and a build directory. The suite lets it write nowhere on the
host: writes inside the guest may fail (a read-only 9p root) or land in the guest's own tmpfs,
but none may show up on the host. The guest's SSH port is forwarded on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import pwd
import secrets
from pathlib import Path

import pytest

from kheaders_suite.boot import guesthome, sshkeys
from kheaders_suite.plugin.options import Settings
from kheaders_suite.records import KernelBuild
from kheaders_suite.session.guest import Guest

# Guest paths a misbehaving guest would try: system dirs, root's home, the temp dirs the host
# shares with it, and the build directory it is given (read-only) for modules.
GUEST_DIRS = ("/usr", "/etc", "/root", "/var/tmp", "/tmp", "/home", guesthome.HOST_HOME_MOUNT)
LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp*
LOOPBACK = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}


def host_path(guest: Guest, guest_path: str) -> Path:
    """Where ``guest_path`` lives on the host: the same path on a shared root, else under the
    foreign root filesystem (or a read-only dir the suite maps in)."""
    spec = guest.vm.spec
    for top, mount in spec.rodirs:
        if guest_path == mount or guest_path.startswith(mount.rstrip("/") + "/"):
            return top / Path(guest_path).relative_to(mount)
    return Path(guest_path) if spec.root is None else spec.root / guest_path.lstrip("/")


@pytest.mark.variants("sysfs")
def test_guest_writes_never_reach_the_host(guest: Guest, kernel_build: KernelBuild) -> None:
    marker = f"kheaders-guest-write-{secrets.token_hex(4)}"
    targets = [f"{d}/{marker}" for d in GUEST_DIRS]
    targets.append(f"{guest.guest_path(kernel_build.dir)}/{marker}")
    absorbed = [t for t in targets if guest.run(("touch", t)).rc == 0]  # the guest's own tmpfs
    leaked = [f"{t} -> {host_path(guest, t)}" for t in targets if host_path(guest, t).exists()]
    for t in absorbed:
        guest.run(("rm", "-f", t))
    assert not leaked, f"guest writes reached the host: {leaked}"


def listeners(port: int) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp* writes them) listening on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, _, hexport = fields[1].partition(":")
            if int(hexport, 16) == port and fields[3] == LISTEN:
                found.append(address)
    return found


@pytest.mark.variants("sysfs")
def test_ssh_is_forwarded_on_loopback_only(guest: Guest) -> None:
    bound = listeners(guest.vm.spec.port)
    assert bound, f"nothing listens on the guest's SSH port {guest.vm.spec.port}"
    assert set(bound) <= LOOPBACK, f"port {guest.vm.spec.port} listens beyond loopback: {bound}"


@pytest.mark.variants("sysfs")
def test_the_login_key_is_the_vms_own(guest: Guest, suite_settings: Settings) -> None:
    """The key this session logged in with was made for this VM (sshkeys): vng's HOME is the
    VM's own, in the cache; the guest authorizes that key alone; its private half is in no
    file there (the file vng asks for is a placeholder); it is not the user's virtme-ng key."""
    home = guest.vm.home
    assert suite_settings.cache_dir in home.parents, f"{home} is not in the cache"
    ssh = home / sshkeys.SSH_DIR
    authorized = (ssh / f"{sshkeys.LOGIN}.pub").read_text()
    assert authorized.startswith(sshkeys.public_line(guest.vm.keys.login))
    assert (ssh / sshkeys.LOGIN).read_bytes() == sshkeys.PLACEHOLDER
    users = Path.home() / ".cache/virtme-ng/.ssh/id_virtme.pub"
    assert not users.exists() or sshkeys.public_line(guest.vm.keys.login) not in users.read_text()


@pytest.mark.variants("sysfs")
def test_no_shell_in_the_guest_runs_the_host_users_startup_files(guest: Guest) -> None:
    """sshd runs every channel through root's shell, and bash sources ~/.bashrc for a command
    sent over SSH too: the guest's /root has every entry of the host's home but those
    (guesthome). A foreign root's /root is its root filesystem's; the host's home is not in it."""
    listing = set(guest.run(("ls", "-A", "/root"), check=True).stdout.split())
    mounted = guest.run(("test", "-d", guesthome.HOST_HOME_MOUNT)).rc == 0
    if guest.vm.spec.root is not None:
        assert not mounted, "the host's home is mounted in a foreign root's guest"
        return
    startup = sorted(listing & guesthome.STARTUP_FILES)
    assert not startup, f"the guest's /root has the host user's {startup}: shells run them"
    host_home = pwd.getpwuid(0).pw_dir
    missing = sorted(set(guesthome.linked_names(os.listdir(host_home))) - listing)
    assert not missing, f"entries of the host's {host_home} missing from the guest's: {missing}"
