"""Step 4, keys: one VM's SSH keys, made for it alone, the login key's private half never on disk.

An x86_64 guest shares the host's root over 9p, read-only but whole: a root shell in it can
mount the root's tag again anywhere and read any host file, the suite's cache included. So no
file may hold a key that lets one guest into another. virtme-ng's --ssh takes its keys from
~/.cache/virtme-ng/.ssh under the HOME it runs with; each VM gets a HOME of its own (vm.py),
and this module fills its .ssh before vng starts:

- ``id_virtme.pub``: the public half of a login key made in memory for this VM; the private
  half stays in the suite's process (``VMKeys.login``), handed to paramiko as a key object.
- ``id_virtme``: a placeholder, not a key. virtme-ng runs ssh-keygen for a new login key
  when this file or the .pub is missing; with both present it copies only the .pub into a
  foreign root's guest (run-* dirs) and leaves this one alone.
- ``etc/ssh/ssh_host_ed25519_key``: the guest's host key, fresh for this VM; the client pins
  its public half, known here without reading anything back from a guest. The guest needs
  the private half (its sshd serves it), so it is the one private key the guest reads.
- ``etc/ssh/ssh_host_{rsa,ecdsa}_key``: placeholders. ``ssh-keygen -A``, which virtme-ng runs
  on that directory, skips a non-empty file; without them it spends ~0.7 s on an RSA key
  per boot, and the guest's sshd would offer host keys the client does not pin.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

# Where virtme-ng keeps its SSH state under its HOME (virtme_ng.utils.SSH_DIR).
SSH_DIR = Path(".cache/virtme-ng/.ssh")
LOGIN = "id_virtme"
HOST_KEY = "etc/ssh/ssh_host_ed25519_key"
UNUSED_HOST_KEYS = ("etc/ssh/ssh_host_rsa_key", "etc/ssh/ssh_host_ecdsa_key")
PLACEHOLDER = b"# not a key: kheaders-suite keeps this VM's SSH keys in memory (boot/sshkeys.py)\n"


@dataclass(frozen=True)
class VMKeys:
    """The keys of one VM as the client holds them: the one it logs in with and the one the
    guest's sshd must prove it has."""

    login: paramiko.PKey
    host: paramiko.PKey


def _new_key() -> tuple[paramiko.PKey, bytes, bytes]:
    """A fresh ed25519 key: (paramiko's view, OpenSSH private text, OpenSSH public line)."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH)
    return paramiko.Ed25519Key.from_private_key(io.StringIO(private.decode())), private, public


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def prepare(home: Path) -> VMKeys:
    """Fill a new HOME's virtme-ng .ssh with this VM's keys; returns what the client needs."""
    ssh = home / SSH_DIR
    login, _, login_public = _new_key()
    host, host_private, host_public = _new_key()
    _write(ssh / f"{LOGIN}.pub", login_public + b" kheaders-suite\n", 0o644)
    _write(ssh / LOGIN, PLACEHOLDER, 0o600)
    _write(ssh / HOST_KEY, host_private, 0o600)
    _write(ssh / f"{HOST_KEY}.pub", host_public + b"\n", 0o644)
    for name in UNUSED_HOST_KEYS:
        _write(ssh / name, PLACEHOLDER, 0o600)
    return VMKeys(login=login, host=paramiko.Ed25519Key(data=host.asbytes()))


def public_line(key: paramiko.PKey) -> str:
    """``key`` as an authorized_keys line has it: type and base64 blob."""
    return f"{key.get_name()} {key.get_base64()}"
