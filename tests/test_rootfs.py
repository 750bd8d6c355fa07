import dataclasses
import os
from pathlib import Path

import pytest

from kheaders_suite.boot import rootfs
from kheaders_suite.boot.rootfs import Method
from kheaders_suite.catalog import arches
from kheaders_suite.errors import UserError

# An arch no host runs, so is_native is False on any machine the tests run on.
FOREIGN = dataclasses.replace(arches.get("arm64"), uts_machine="fakearch")
BINFMT_OK = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\n"


def binfmt_dir(tmp_path: Path, text: str | None) -> Path:
    d = tmp_path / "binfmt_misc"
    d.mkdir()
    if text is not None:
        (d / "qemu-fakearch").write_text(text)
    return d


@pytest.mark.parametrize(("text", "ready"), [
    (BINFMT_OK, True),
    (BINFMT_OK.replace("enabled", "disabled"), False),
    (BINFMT_OK.replace("flags: PF", "flags: P"), False),  # the emulator would be looked up
    ("", False),                                           # in the tree, which has none
    (None, False),
])
def test_binfmt_ready_needs_enabled_entry_with_fix_binary_flag(
        tmp_path: Path, text: str | None, ready: bool) -> None:
    assert rootfs.binfmt_ready("fakearch", binfmt_dir(tmp_path, text)) is ready


def test_method_falls_back_to_extract_without_binfmt(tmp_path: Path) -> None:
    assert rootfs.choose_method(FOREIGN, binfmt_dir(tmp_path, None)) is Method.EXTRACT


def test_method_runs_scripts_with_binfmt(tmp_path: Path) -> None:
    assert rootfs.choose_method(FOREIGN, binfmt_dir(tmp_path, BINFMT_OK)) is Method.SCRIPTS


def test_native_arch_needs_no_emulation(tmp_path: Path) -> None:
    assert rootfs.choose_method(arches.host(), tmp_path / "absent") is Method.SCRIPTS


def test_key_is_stable_and_changes_with_every_input() -> None:
    arm = arches.get("arm64")
    key = rootfs.rootfs_key(arm, Method.SCRIPTS)
    assert key == rootfs.rootfs_key(arm, Method.SCRIPTS, tuple(reversed(rootfs.PACKAGES)))
    assert key != rootfs.rootfs_key(arm, Method.EXTRACT)
    assert key != rootfs.rootfs_key(arches.get("x86_64"), Method.SCRIPTS)
    assert key != rootfs.rootfs_key(arm, Method.SCRIPTS, (*rootfs.PACKAGES, "make"))


def test_scripts_command_line() -> None:
    cmd = rootfs.mmdebstrap_command(Path("/c/rootfs/t"), FOREIGN, Method.SCRIPTS,
                                    ("bash", "gcc"), Path("/etc/apt/x.sources"))
    assert cmd == (
        "mmdebstrap", "--mode=root", "--verbose", "--architectures=arm64",
        "--variant=essential",
        "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/info/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--skip=check/qemu",
        "--include=bash,gcc", "bookworm", "/c/rootfs/t", "/etc/apt/x.sources",
    )


def test_extract_command_line_without_host_sources() -> None:
    cmd = rootfs.mmdebstrap_command(Path("/t"), FOREIGN, Method.EXTRACT, ("bash",), None)
    assert cmd == (
        "mmdebstrap", "--mode=root", "--verbose", "--architectures=arm64",
        "--variant=extract", "--skip=check/empty", "--include=?essential",
        "--include=bash", "bookworm", "/t",
    )


def test_native_scripts_build_keeps_the_emulation_check() -> None:
    cmd = rootfs.mmdebstrap_command(Path("/t"), arches.host(), Method.SCRIPTS)
    assert "--skip=check/qemu" not in cmd
    assert cmd[-1] == str(rootfs.HOST_SOURCES)


def test_package_list_covers_what_the_guest_needs() -> None:
    for pkg in ("bash", "busybox-static", "openssh-server", "openssh-sftp-server", "kmod", "tar",
                "xz-utils", "gcc", "libc6-dev", "python3", "perl", "iproute2", "util-linux",
                "python3-bpfcc", "clang-14"):  # the archive's consumers: bcc and its clang
        assert pkg in rootfs.PACKAGES


def test_account_files_add_sshd_and_lock_everyone() -> None:
    files = rootfs.account_files("root:x:0:0:root:/root:/bin/bash\n", "root:x:0:\n")
    assert files["passwd"].splitlines() == ["root:x:0:0:root:/root:/bin/bash",
                                            rootfs.SSHD_USER]
    assert files["group"] == "root:x:0:\n"
    assert [ln.split(":")[:2] for ln in files["shadow"].splitlines()] == [
        ["root", "*"], ["sshd", "*"]]


def fake_extracted_tree(root: Path) -> None:
    rootfs.make_merged_usr(root, rootfs.DEFAULT_MERGED_DIRS)
    masters = root / "usr/share/base-passwd"
    masters.mkdir(parents=True)
    (masters / "passwd.master").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (masters / "group.master").write_text("root:x:0:\nnogroup:x:65534:\n")
    (root / "etc/pam.d").mkdir(parents=True)
    for tool in ("mawk", "gcc", "busybox"):
        (root / "usr/bin" / tool).write_text("")
    (root / "usr/share/doc/bash").mkdir(parents=True)


def test_extract_fixups_make_a_tree_sshd_and_virtme_init_accept(tmp_path: Path) -> None:
    fake_extracted_tree(tmp_path)
    rootfs.extract_fixups(tmp_path)
    rootfs.common_fixups(tmp_path)
    assert (tmp_path / "bin").readlink() == Path("usr/bin")
    assert (tmp_path / "bin/mawk").exists()  # through the merged-/usr link
    assert "sshd:x:100:" in (tmp_path / "etc/passwd").read_text()
    assert (tmp_path / "etc/shadow").stat().st_mode & 0o777 == 0o640
    assert "pam_unix.so" in (tmp_path / "etc/pam.d/common-account").read_text()
    assert (tmp_path / "usr/bin/awk").readlink() == Path("/usr/bin/mawk")
    assert not (tmp_path / "usr/bin/c99").is_symlink()  # its target is not in this tree
    assert (tmp_path / "usr/local/sbin/poweroff").readlink() == Path("/usr/bin/busybox")
    assert (tmp_path / "etc/fstab").is_file()
    assert (tmp_path / "mnt").is_dir()
    assert not (tmp_path / "usr/share/doc").exists()


def test_fixups_keep_what_packages_shipped(tmp_path: Path) -> None:
    fake_extracted_tree(tmp_path)
    (tmp_path / "usr/bin/awk").symlink_to("/etc/alternatives/awk")
    rootfs.extract_fixups(tmp_path)
    assert (tmp_path / "usr/bin/awk").readlink() == Path("/etc/alternatives/awk")


def test_existing_tree_is_returned_without_building(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no mmdebstrap: must not be needed
    arm = arches.get("arm64")
    tree = rootfs.tree_path(tmp_path / "rootfs", arm, rootfs.choose_method(arm))
    tree.mkdir(parents=True)
    assert rootfs.ensure_rootfs(tmp_path, arm, lambda _m: None) == tree


def test_a_scripts_tree_is_used_even_without_binfmt_now(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    tree = rootfs.tree_path(tmp_path / "rootfs", FOREIGN, Method.SCRIPTS)
    tree.mkdir(parents=True)
    assert rootfs.ensure_rootfs(tmp_path, FOREIGN, lambda _m: None) == tree


def test_missing_mmdebstrap_names_the_fix(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(UserError, match=r"mmdebstrap not found.*run ci/setup"):
        rootfs.ensure_rootfs(tmp_path, arches.get("arm64"), lambda _m: None)
    assert not (tmp_path / "rootfs").exists()


def test_stale_virtme_init_scripts_are_removed_fresh_ones_kept(tmp_path: Path) -> None:
    old, fresh, other = (tmp_path / "virtme-init-old", tmp_path / "virtme-init-new",
                         tmp_path / "keep")
    for path in (old, fresh, other):
        path.write_text("exec /run/virtme/guesttools/virtme-init\n")
    os.utime(old, (1000.0, 1000.0))
    os.utime(fresh, (5000.0, 5000.0))
    os.utime(other, (1000.0, 1000.0))
    rootfs.remove_stale_init_scripts(tmp_path, max_age=3600.0, now=5000.0 + 60)
    assert not old.exists()
    assert fresh.exists()
    assert other.exists()
