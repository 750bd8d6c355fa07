"""What a guest gets of the host: no login key, no network but its SSH forward, a pinned host
key, and nothing left behind when its VM closes. No VM: virtme-ng's own dry run builds the
real QEMU command line; fake vng processes and a paramiko server on loopback stand in for the
rest (vmtests/test_hostile_guest.py tries the same from inside real guests)."""

from __future__ import annotations

import dataclasses
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import paramiko
import pytest

from kheaders_suite.boot import sshkeys
from kheaders_suite.boot.accel import Accel
from kheaders_suite.boot.vm import (
    VM,
    VMSpec,
    netdevs,
    new_home,
    stale_homes,
    vng_command,
    vng_env,
)
from kheaders_suite.catalog import arches
from kheaders_suite.host import tools
from kheaders_suite.session.connect import ssh_login

from .test_vm import fake_build


def spec_in(tmp_path: Path, accel: str = "tcg") -> VMSpec:
    image = tmp_path / "bzImage"
    image.write_bytes(b"")  # vng's dry run reads nothing of it
    return VMSpec(dataclasses.replace(fake_build(), image=image), arches.get("x86_64"),
                  Accel(accel, "test"), port=4567, vng_home=tmp_path / "vng-home")


def dry_run(spec: VMSpec, home: Path) -> tuple[str, ...]:
    """The QEMU command line virtme-ng builds for the suite's vng command, without a VM."""
    vng = str(tools.checked_vng())
    done = subprocess.run((*vng_command(spec, vng), "--dry-run"), env=vng_env(spec, vng, home),
                          capture_output=True, text=True, timeout=120, check=True)
    line = next(ln for ln in done.stdout.splitlines() if "qemu-system-" in ln)
    return tuple(shlex.split(line))


def test_the_ssh_netdev_is_restricted_and_still_forwards(tmp_path: Path) -> None:
    spec = spec_in(tmp_path)
    home = new_home(spec)
    sshkeys.prepare(home)
    user = [n for n in netdevs(dry_run(spec, home)).values() if n.get("type") == "user"]
    assert len(user) == 1, f"one user netdev expected: {user}"
    assert user[0].get("restrict") == "on", f"the guest's user netdev is open: {user[0]}"
    assert user[0].get("hostfwd") == f"tcp:127.0.0.1:{spec.port}-:22"


def test_netdevs_apply_set_options() -> None:
    args = ("-netdev", "user,id=ssh,hostfwd=tcp:127.0.0.1:1-:22", "-set", "netdev.ssh.restrict=on")
    assert netdevs(args) == {"ssh": {"type": "user", "id": "ssh", "restrict": "on",
                                     "hostfwd": "tcp:127.0.0.1:1-:22"}}


def private_keys(top: Path) -> dict[Path, bytes]:
    found = {}
    for path in top.rglob("*"):
        if path.is_file() and b"PRIVATE KEY" in path.read_bytes():
            found[path] = path.read_bytes()
    return found


def test_no_exported_file_holds_the_login_key(tmp_path: Path) -> None:
    """The host's root is exported whole (path=/): no file may hold the login key. After vng
    ran in the VM's home, the only private key there is the guest's own host key."""
    spec = spec_in(tmp_path)
    home = new_home(spec)
    keys = sshkeys.prepare(home)
    qemu = dry_run(spec, home)
    exported = [Path(opt.partition("path=")[2].split(",")[0]) for opt in qemu
                if opt.startswith("local,") and "path=" in opt]
    assert any(home == top or top in home.parents for top in exported), exported
    ssh = home / sshkeys.SSH_DIR
    assert list(private_keys(home)) == [ssh / sshkeys.HOST_KEY]
    host = paramiko.Ed25519Key.from_private_key_file(str(ssh / sshkeys.HOST_KEY))
    assert host == keys.host
    assert host != keys.login
    assert (ssh / sshkeys.LOGIN).read_bytes() == sshkeys.PLACEHOLDER
    authorized = (ssh / f"{sshkeys.LOGIN}.pub").read_text()
    assert authorized.startswith(sshkeys.public_line(keys.login))


def test_every_vm_has_keys_of_its_own(tmp_path: Path) -> None:
    spec = spec_in(tmp_path)
    one, two = (sshkeys.prepare(new_home(spec)) for _ in range(2))
    assert one.login != two.login
    assert one.host != two.host


FAKE_VNG = """\
import os, pathlib, signal, sys, tempfile, time
root = pathlib.Path(os.environ["HOME"], ".cache/virtme-ng/guest")  # virtme-ng's GUEST_CACHE_ROOT
root.mkdir(parents=True)
run = pathlib.Path(tempfile.mkdtemp(prefix="run-", dir=root))
(run / "ssh_host_ed25519_key").write_text("copied host key")
def term(_sig, _frame):
    pathlib.Path(os.environ["TERM_MARK"]).write_text("TERM")
    if os.environ["ON_TERM"] == "exit":
        sys.exit(0)
signal.signal(signal.SIGTERM, term)
print("ready", flush=True)
while True:
    time.sleep(0.1)
"""


def fake_vm(tmp_path: Path, on_term: str, monkeypatch: pytest.MonkeyPatch) -> VM:
    """A VM whose vng is a real process that leaves a run-* dir in its HOME, as virtme-ng
    does for a foreign root, and on SIGTERM exits or ignores it (``on_term``)."""
    fake = tmp_path / "vng"
    fake.write_text(f"#!{sys.executable}\n{FAKE_VNG}")
    fake.chmod(0o755)
    spec = spec_in(tmp_path, accel="kvm")  # scale 1: TERM_WAIT seconds before SIGKILL
    monkeypatch.setenv("TERM_MARK", str(tmp_path / "term"))
    monkeypatch.setenv("ON_TERM", on_term)
    vm = VM(spec, tmp_path / "console.log", vng=str(fake))
    deadline = time.monotonic() + 30
    while "ready" not in vm.own_console() and time.monotonic() < deadline:
        time.sleep(0.05)
    return vm


@pytest.mark.parametrize("on_term", ["exit", "ignore"])
def test_close_terminates_first_then_kills_and_removes_the_run(
        tmp_path: Path, on_term: str, monkeypatch: pytest.MonkeyPatch) -> None:
    vm = fake_vm(tmp_path, on_term, monkeypatch)
    runs = list(vm.home.glob(".cache/virtme-ng/guest/run-*"))
    assert runs, "the fake vng left no run-* dir"
    vm.close()
    assert (tmp_path / "term").read_text() == "TERM", "close() did not send SIGTERM first"
    assert vm.proc.poll() is not None
    left = [run for run in runs if run.exists()]
    assert not left, f"run dirs left: {left}"
    assert not vm.home.exists(), f"{vm.home} (the VM's keys) left behind"


def test_homes_of_dead_launchers_are_stale(tmp_path: Path) -> None:
    dead = subprocess.Popen((sys.executable, "-c", "pass"))
    dead.wait()
    (tmp_path / f"vm-{dead.pid}-00").mkdir()
    (tmp_path / f"vm-{os.getpid()}-00").mkdir()
    (tmp_path / "other").mkdir()
    assert stale_homes(tmp_path) == [tmp_path / f"vm-{dead.pid}-00"]


class _Server(paramiko.ServerInterface):
    def __init__(self, login: paramiko.PKey) -> None:
        self.login = login

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        ok = username == "root" and key == self.login
        return paramiko.common.AUTH_SUCCESSFUL if ok else paramiko.common.AUTH_FAILED


def serve_once(host_key: paramiko.PKey, login: paramiko.PKey) -> int:
    """A real SSH server on 127.0.0.1 for one connection, with ``host_key``; its port."""
    listener = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        conn, _ = listener.accept()
        transport = paramiko.Transport(conn)
        transport.add_server_key(host_key)
        try:
            transport.start_server(server=_Server(login))
            transport.accept(5)
        except (paramiko.SSHException, EOFError, OSError):
            pass
        finally:
            transport.close()
            listener.close()

    threading.Thread(target=run, daemon=True).start()
    return int(listener.getsockname()[1])


def test_login_pins_the_vms_host_key(tmp_path: Path) -> None:
    keys = sshkeys.prepare(tmp_path / "home")
    own = paramiko.Ed25519Key.from_private_key_file(
        str(tmp_path / "home" / sshkeys.SSH_DIR / sshkeys.HOST_KEY))
    client = ssh_login(serve_once(own, keys.login), 10.0, keys)
    client.close()
    impostor = sshkeys.prepare(tmp_path / "other")
    stranger = paramiko.Ed25519Key.from_private_key_file(
        str(tmp_path / "other" / sshkeys.SSH_DIR / sshkeys.HOST_KEY))
    with pytest.raises(paramiko.SSHException, match="does not match"):
        ssh_login(serve_once(stranger, keys.login), 10.0, keys)
    assert impostor.host != keys.host
