"""The suite's guest init: the launcher makes virtme-ng boot it (checked with virtme-ng's own
dry run, no VM), and the script is POSIX sh."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from kheaders_suite.boot import guestinit
from kheaders_suite.boot.vm import VMSpec, vng_env
from kheaders_suite.errors import UserError
from kheaders_suite.host import tools

from .fakeguest import FakeVM


def dry_run_init(launcher: Path, home: Path, kimg: Path) -> str:
    """The init= virtme-run puts on the kernel command line when started from vng's PATH."""
    kimg.write_bytes(b"")
    env = {**os.environ, "HOME": str(home),
           "PATH": f"{launcher}{os.pathsep}{tools.find_vng().parent}{os.pathsep}"
                   f"{os.environ.get('PATH', '')}"}
    out = subprocess.run(["virtme-run", "--kimg", str(kimg), "--mods", "none", "--dry-run",
                          "--show-command", "--force-9p", "--disable-kvm", "--server", "ssh",
                          "--ssh-tcp", "--port", "2222"],
                         env=env, capture_output=True, text=True, timeout=60, check=True)
    found = re.findall(r"init=(\S+?)['\s]", out.stdout + out.stderr)
    assert found, out.stdout + out.stderr
    return str(found[-1])


def test_virtme_ng_boots_the_suite_init_through_the_launcher(tmp_path: Path) -> None:
    launcher = guestinit.ensure(tmp_path / "guest-init", tools.find_vng())
    init = dry_run_init(launcher, tmp_path, tmp_path / "bzImage")
    assert init == str(launcher.parent / "guest" / guestinit.INIT_NAME)
    assert Path(init).read_bytes() == guestinit.init_script()
    assert os.access(init, os.X_OK)


def test_without_the_launcher_virtme_ng_boots_its_own(tmp_path: Path) -> None:
    """The broken case of the test above: vng's PATH without the launcher."""
    init = dry_run_init(tmp_path / "nothing", tmp_path, tmp_path / "bzImage")
    assert "/virtme/guest/" in init


def test_the_launcher_is_made_once_and_named_by_its_content(tmp_path: Path) -> None:
    first = guestinit.ensure(tmp_path, tools.find_vng())
    stamp = (first / "virtme-run").stat().st_mtime_ns
    assert guestinit.ensure(tmp_path, tools.find_vng()) == first
    assert (first / "virtme-run").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.parent.name]


def test_a_vng_without_virtme_run_beside_it_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "vng").write_text("#!/bin/sh\n")
    with pytest.raises(UserError, match=r"no Python virtme-run beside .*--guest-init vng"):
        guestinit.ensure(tmp_path / "cache", tmp_path / "vng")
    assert not (tmp_path / "cache").exists()


def test_vng_finds_the_launcher_first_on_its_path(tmp_path: Path) -> None:
    spec = FakeVM(tmp_path / "c.log").spec
    launched = VMSpec(**{**spec.__dict__, "init_launcher": tmp_path / "bin"})
    path = vng_env(launched, "/venv/bin/vng", tmp_path, {"PATH": "/usr/bin"})["PATH"]
    assert path.split(os.pathsep) == [str(tmp_path / "bin"), "/venv/bin", "/usr/bin"]
    plain = vng_env(spec, "/venv/bin/vng", tmp_path, {"PATH": "/usr/bin"})
    assert plain["PATH"] == "/venv/bin:/usr/bin"


def test_the_init_is_posix_sh() -> None:
    script = guestinit.init_script()
    assert script.startswith(b"#!/bin/sh\n")
    subprocess.run(["sh", "-n"], input=script, check=True, timeout=10)
