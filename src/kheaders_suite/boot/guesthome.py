"""The guest's home for root: the host's /root without the shell's startup files.

A guest that shares the host's root sees the host's /root as its own when vng runs as root
(virtme-ng passes virtme_root_user and leaves /root alone; for other users it mounts an
empty one). sshd runs every channel through root's login shell, and bash sources ~/.bashrc
for a command sent over SSH too, so each channel, and the interactive shell virtme-ng
starts on the console during the boot, ran the host user's dotfiles: on these machines
`pyenv init`, 4.2 of the 4.5 s an SSH channel cost under TCG, and ~6 s of every x86_64 boot.

The suite mounts the host's /root at HOST_HOME_MOUNT and, over /root, a directory of
symlinks to every entry of it but the startup files: every path under /root still resolves
in the guest (the cache, vng's keys, a venv kept in the home), and no shell reads the host
user's startup files. The directory is named by the names it links, so it is made once,
never changed, and shared by every VM and xdist worker that needs the same one.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from kheaders_suite.catalog.paths import publish_dir

# Where the guest sees the host's own /root (an empty tmpfs dir the init creates).
HOST_HOME_MOUNT = "/run/kheaders-host-home"
GUEST_HOME = "/root"
# What a login or command shell reads from the home on its own (bash, sh, zsh, csh, ksh;
# PAM's pam_env with user_readenv): nothing a test needs, everything a user customises.
STARTUP_FILES = frozenset({
    ".bashrc", ".bash_profile", ".bash_login", ".bash_logout", ".profile",
    ".zshenv", ".zprofile", ".zshrc", ".zlogin", ".zlogout",
    ".cshrc", ".tcshrc", ".login", ".kshrc", ".mkshrc", ".pam_environment",
})


def linked_names(entries: Iterable[str]) -> list[str]:
    """The entries of the host's home the guest's home links to, sorted."""
    return sorted(name for name in entries if name not in STARTUP_FILES)


def home_dir(parent: Path, names: list[str]) -> Path:
    """Where the home linking ``names`` lives: named by its content (the links' target too)."""
    digest = hashlib.sha256("\0".join([HOST_HOME_MOUNT, *names]).encode()).hexdigest()[:16]
    return parent / digest


def ensure_home(parent: Path, host_home: Path) -> Path:
    """The guest home for ``host_home``'s entries now: made under ``parent`` (atomically: a
    temporary directory renamed into place) unless an identical one is already there."""
    names = linked_names(os.listdir(host_home))

    def fill(tmp: Path) -> None:
        for name in names:
            (tmp / name).symlink_to(f"{HOST_HOME_MOUNT}/{name}")

    return publish_dir(home_dir(parent, names), fill)


def rodirs(home: Path, host_home: Path) -> tuple[tuple[Path, str], ...]:
    """(host dir, guest mount point) pairs that give the guest ``home`` as its /root."""
    return ((host_home, HOST_HOME_MOUNT), (home, GUEST_HOME))
