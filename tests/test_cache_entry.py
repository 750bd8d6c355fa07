"""A cached build is used only when whole (cache_entry.py): a truncated image, a missing
module, a half-written or unreadable record, or a record the disk filled while writing makes
the entry unusable; ensure_build then builds again instead of booting it."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from kheaders_suite.build import cache_entry
from kheaders_suite.records import KernelBuild


def entry(out: Path, module: bool = True) -> KernelBuild:
    """A sealed entry laid out as ensure_build leaves one."""
    out.mkdir(parents=True)
    for name, data in (("bzImage", b"\x7fkernel" * 100), ("config", b"CONFIG_IKHEADERS=y\n"),
                       ("System.map", b"ffff t _text\n"), ("kheaders_data.tar.xz", b"\xfd7zXZ")):
        (out / name).write_bytes(data)
    modroot = out / "modroot"
    if module:
        ko = modroot / "lib/modules/7.3.4/kernel/kernel/kheaders.ko"
        ko.parent.mkdir(parents=True)
        ko.write_bytes(b"\x7fELF module")
        (modroot / "lib/modules/7.3.4/modules.softdep").write_bytes(b"")
    build = KernelBuild(key="k", arch="x86_64", variant="module" if module else "sysfs",
                        release="7.3.4", dir=out, image=out / "bzImage", config=out / "config",
                        archive=out / "kheaders_data.tar.xz",
                        modroot=modroot if module else None, source_dir=out, srcarch="x86",
                        objtree_headers=out / "objtree", log=out / "build.log", seconds=1.0)
    cache_entry.write(build)
    return build


def test_a_whole_entry_loads(tmp_path: Path) -> None:
    build = entry(tmp_path / "e")
    loaded, why = cache_entry.load(tmp_path / "e")
    assert why is None
    assert loaded == build
    assert loaded.cached


def test_no_entry_is_not_damage(tmp_path: Path) -> None:
    assert cache_entry.load(tmp_path / "none") == (None, None)


@pytest.mark.parametrize(("damage", "said"), [
    (lambda out: (out / "bzImage").write_bytes(b"\x7fkernel"), "bzImage differs"),
    (lambda out: next(out.rglob("kheaders.ko")).unlink(), "kheaders.ko missing"),
    (lambda out: (out / "build.json").write_text('{"key": "k", "arch"'), "build.json unreadable"),
    (lambda out: (out / "sha256sums.json").write_text("{"), "sha256sums.json unreadable"),
])
def test_damage_makes_the_entry_unusable(tmp_path: Path, damage: object, said: str) -> None:
    entry(tmp_path / "e")
    damage(tmp_path / "e")  # type: ignore[operator]
    loaded, why = cache_entry.load(tmp_path / "e")
    assert loaded is None
    assert why is not None
    assert said in why


def test_an_entry_without_sums_is_rebuilt_even_with_its_files_there(tmp_path: Path) -> None:
    """Nothing tells a truncated image from a whole one without the sums: an entry from
    before them (or never sealed) is built again, once."""
    entry(tmp_path / "e")
    assert cache_entry.load(tmp_path / "e")[1] is None
    (tmp_path / "e/sha256sums.json").unlink()
    loaded, why = cache_entry.load(tmp_path / "e")
    assert loaded is None
    assert why is not None
    assert why.startswith("no sha256sums.json")


def test_a_full_disk_while_sealing_leaves_no_record(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    build = entry(tmp_path / "e")
    (tmp_path / "e/build.json").unlink()
    real = Path.write_text

    def full(self: Path, text: str, *args: object, **kwargs: object) -> int:
        if self.name.startswith(".build.json"):
            real(self, text[:10])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, text)

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(OSError, match="No space left"):
        cache_entry.write(build)
    monkeypatch.undo()
    assert cache_entry.load(tmp_path / "e") == (None, None)  # not cached: built again
    assert not list((tmp_path / "e").glob(".*.tmp"))


def test_the_sums_cover_image_config_map_archive_and_modules(tmp_path: Path) -> None:
    entry(tmp_path / "e")
    sums = json.loads((tmp_path / "e/sha256sums.json").read_text())
    assert set(sums) == {"bzImage", "config", "System.map", "kheaders_data.tar.xz",
                         "modroot/lib/modules/7.3.4/kernel/kernel/kheaders.ko",
                         "modroot/lib/modules/7.3.4/modules.softdep"}
