"""The guest's /root: the host's home linked entry by entry, its shell startup files left out."""

import os
from pathlib import Path

import pytest

from kheaders_suite.boot import guesthome
from kheaders_suite.boot.accel import Accel
from kheaders_suite.boot.vm import VMSpec, vng_command
from kheaders_suite.catalog import arches
from tests.test_vm import fake_build


def host_home(tmp_path: Path) -> Path:
    home = tmp_path / "root"
    (home / ".cache" / "kheaders-suite").mkdir(parents=True)
    for name in (".bashrc", ".profile", ".zshrc", ".gitconfig", "notes.txt"):
        (home / name).write_text("export PYENV_ROOT=...\n")
    return home


def test_every_entry_but_the_shell_startup_files_is_linked_to_the_host_home(
        tmp_path: Path) -> None:
    home = guesthome.ensure_home(tmp_path / "guest-home", host_home(tmp_path))
    assert sorted(os.listdir(home)) == [".cache", ".gitconfig", "notes.txt"]
    assert os.readlink(home / ".cache") == "/run/kheaders-host-home/.cache"
    assert os.readlink(home / "notes.txt") == "/run/kheaders-host-home/notes.txt"


def test_the_same_entries_reuse_one_home_and_a_new_entry_makes_another(tmp_path: Path) -> None:
    """Named by content: xdist workers and later runs share it, and nothing rewrites a home a
    running guest has mounted."""
    src = host_home(tmp_path)
    first = guesthome.ensure_home(tmp_path / "guest-home", src)
    (src / ".bashrc").write_text("changed\n")  # a startup file: not linked, same home
    assert guesthome.ensure_home(tmp_path / "guest-home", src) == first
    (src / "new-dir").mkdir()
    second = guesthome.ensure_home(tmp_path / "guest-home", src)
    assert second != first
    assert "new-dir" in os.listdir(second)
    assert "new-dir" not in os.listdir(first)
    assert not [p for p in (tmp_path / "guest-home").iterdir() if p.name.startswith(".new-")]


def test_a_home_made_meanwhile_by_another_worker_is_taken(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = host_home(tmp_path)
    parent = tmp_path / "guest-home"
    target = guesthome.home_dir(parent, guesthome.linked_names(os.listdir(src)))
    real_rename = Path.rename

    def lose_the_race(self: Path, dest: Path) -> Path:
        Path(dest).mkdir(parents=True)  # the other worker's, already in place
        return real_rename(self, dest)

    monkeypatch.setattr(Path, "rename", lose_the_race)
    assert guesthome.ensure_home(parent, src) == target
    assert [p.name for p in parent.iterdir()] == [target.name]


def test_vng_mounts_the_host_home_and_the_guest_home_over_root(tmp_path: Path) -> None:
    rodirs = guesthome.rodirs(tmp_path / "gh", Path("/root"))
    spec = VMSpec(fake_build(), arches.get("x86_64"), Accel("tcg", "no vmx"), port=2345,
                  rodirs=rodirs)
    cmd = vng_command(spec)
    assert f"--rodir=/root={tmp_path / 'gh'}" in cmd
    assert "--rodir=/run/kheaders-host-home=/root" in cmd
    # a build in the host's home is found by the guest under the host home's mount
    assert (spec.guest_path(Path("/root/.cache/kheaders-suite/builds/b/bzImage"))
            == "/run/kheaders-host-home/.cache/kheaders-suite/builds/b/bzImage")
    assert spec.guest_path(Path("/work/b")) == "/work/b"
