"""The carried kernel patches (catalog/kernels/patches/), checked without building a kernel.

Every patch must be a git format-patch mail with a real commit message, a well-formed unified
diff, and must not touch a header: the archive packs the tree's *.h files, so a header change
would make its contents depend on the variant. Each series must apply, without fuzz, to a fake
tree holding the original files from tests/data/kernel-<version>/, chosen the way the harness
chooses (worktree.pick_series, applied with worktree.patch_cmd), and the result must put the
archive at its variant's path and nowhere else.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from kheaders_suite.catalog.paths import PATCHES_DIR
from kheaders_suite.catalog.variants import VARIANTS
from kheaders_suite.errors import PatchFailed
from kheaders_suite.source import worktree
from kheaders_suite.source.tree import KernelVersion

DATA = Path(__file__).parent / "data"
PATCHES = sorted(PATCHES_DIR.glob("*/*/*.patch"))
SERIES = sorted({v.patch_series for v in VARIANTS if v.patch_series})
# tests/data/kernel-<X.Y>/: original kernel/kheaders.c and an init/Kconfig excerpt.
FIXTURES = {KernelVersion.parse(d.name.removeprefix("kernel-")): d
            for d in sorted(DATA.glob("kernel-*")) if d.is_dir()}

_MBOX_FROM = re.compile(r"^From [0-9a-f]{40} Mon Sep 17 00:00:00 2001$")
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass(frozen=True)
class Expected:
    """What a series must leave in the tree, beyond not being sysfs any more."""

    depends_on: str
    calls: tuple[str, ...]


EXPECTED = {
    # The 2019 v5 series' file, with today's struct proc_ops.
    "proc": Expected("PROC_FS", ("proc_create(", "S_IFREG | 0444", "proc_set_size(",
                                 "simple_read_from_buffer(", ".proc_lseek", "proc_remove(")),
    "debugfs": Expected("DEBUG_FS", ("struct debugfs_blob_wrapper", "0444", "debugfs_remove(")),
}
# 71cd3c636404 (v6.8) gave debugfs blob files a write method, which root reaches even through a
# 0444 file; the archive is in .rodata, so from then on the debugfs patch must not use
# debugfs_create_blob() (a write by root would oops) and carries its own read-only fops.
BLOB_WRITABLE = KernelVersion(6, 8)


@dataclass(frozen=True)
class FileDiff:
    old: str
    new: str
    hunks: int


def parse_unified(diff: str) -> list[FileDiff]:
    """The files of a unified diff; ValueError when a header or a hunk's line count is off."""
    lines = diff.splitlines()
    files: list[FileDiff] = []
    i = 0
    while i < len(lines):
        if not lines[i].startswith("--- "):
            i += 1
            continue
        if i + 1 >= len(lines) or not lines[i + 1].startswith("+++ "):
            raise ValueError(f"line {i + 1}: '---' without '+++'")
        old, new = lines[i][4:].split("\t")[0], lines[i + 1][4:].split("\t")[0]
        i += 2
        hunks = 0
        while i < len(lines) and (m := _HUNK.match(lines[i])):
            i = _skip_hunk(lines, i + 1, int(m[2] or 1), int(m[4] or 1))
            hunks += 1
        if not hunks:
            raise ValueError(f"{new}: no hunk")
        files.append(FileDiff(old, new, hunks))
    return files


def _skip_hunk(lines: list[str], i: int, old: int, new: int) -> int:
    """Index after the hunk body starting at ``i``; ValueError if it is short or has junk."""
    while old > 0 or new > 0:
        line = lines[i] if i < len(lines) else ""
        if line.startswith(" "):
            old, new = old - 1, new - 1
        elif line.startswith("-"):
            old -= 1
        elif line.startswith("+"):
            new -= 1
        elif not line.startswith("\\"):
            raise ValueError(f"line {i + 1}: {line!r} inside a hunk ({old}/{new} lines left)")
        i += 1
    if old < 0 or new < 0:
        raise ValueError(f"line {i}: hunk longer than its header says")
    return i


def _split_mail(text: str) -> tuple[email.message.EmailMessage, str, str]:
    """Headers, commit message and diff of a git format-patch mail."""
    msg = email.message_from_string(text, policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    body = msg.get_payload()
    assert isinstance(body, str)
    message, sep, diff = body.partition("\n---\n")
    assert sep, "no '---' line between the commit message and the diff"
    return msg, message, diff


def _fake_tree(tmp_path: Path, version: KernelVersion) -> Path:
    tree = tmp_path / f"linux-{version}"
    shutil.copytree(FIXTURES[version], tree, ignore=shutil.ignore_patterns("README*"))
    return tree


def _apply(tree: Path, patch: Path) -> None:
    __tracebackhide__ = True
    for dry_run in (True, False):
        run = subprocess.run(worktree.patch_cmd(tree, patch, dry_run),
                             capture_output=True, text=True, check=False)
        out = run.stdout + run.stderr
        if run.returncode != 0:
            pytest.fail(f"{patch.name} does not apply to the fake tree (first failing file "
                        f"{worktree.first_failing_file(out)}):\n{out}")
        if "fuzz" in out:
            pytest.fail(f"{patch.name} applies only with fuzz; refresh it:\n{out}")


def _rel(patch: Path) -> str:
    return str(patch.relative_to(PATCHES_DIR))


def test_every_variant_series_is_carried_and_checked() -> None:
    assert SERIES, "no variant needs a patch series?"
    assert FIXTURES, f"no fake-tree fixtures under {DATA}"
    checked: set[Path] = set()
    for name in SERIES:
        assert name in EXPECTED, f"series {name}: add what it must produce to EXPECTED"
        for version in FIXTURES:
            checked |= set(worktree.pick_series(PATCHES_DIR, name, version).patches)
    unchecked = [_rel(p) for p in PATCHES if p not in checked]
    assert not unchecked, f"no fixture in {DATA} picks these patches: {unchecked}"


@pytest.mark.parametrize("patch", PATCHES, ids=_rel)
def test_patch_is_a_format_patch_mail(patch: Path) -> None:
    text = patch.read_text()
    assert _MBOX_FROM.match(text.splitlines()[0]), "first line is not git format-patch's From"
    msg, message, diff = _split_mail(text)
    assert msg["From"], "no From: header"
    assert str(msg["Subject"]).startswith("[PATCH"), "no Subject: [PATCH...] header"
    assert len([line for line in message.splitlines() if line.strip()]) >= 5, \
        "the commit message must say what the patch does and why"
    assert "diff --git " in diff, "no git diff after the '---' line"


@pytest.mark.parametrize("patch", PATCHES, ids=_rel)
def test_patch_parses_and_touches_no_header(patch: Path) -> None:
    text = patch.read_text()
    files = parse_unified(_split_mail(text)[2])
    assert files, "no file in the diff"
    names = [f.new.removeprefix("b/") for f in files]
    # The harness unshares exactly the files its own regex finds; it must agree with ours.
    assert names == worktree.patched_files(text)
    headers = [n for f in files for n in (f.old, f.new) if n.endswith(".h")]
    assert not headers, f"touches headers {headers}: the archive would differ by variant"


@pytest.mark.parametrize("version", sorted(FIXTURES), ids=str)
@pytest.mark.parametrize("name", SERIES)
def test_series_applies_and_moves_the_archive(
    tmp_path: Path, name: str, version: KernelVersion
) -> None:
    tree = _fake_tree(tmp_path, version)
    series = worktree.pick_series(PATCHES_DIR, name, version)
    assert series.patches, f"{name}/{series.range}: empty series dir"
    for patch in series.patches:
        _apply(tree, patch)
    source = (tree / "kernel/kheaders.c").read_text()
    kconfig = (tree / "init/Kconfig").read_text()
    expected = EXPECTED[name]
    missing = [c for c in expected.calls if c not in source]
    assert not missing, f"kernel/kheaders.c lacks {missing}"
    if name == "debugfs":
        blob = 'debugfs_create_blob("' in source
        assert blob == (version < BLOB_WRITABLE), f"debugfs_create_blob() is {version}'s choice"
    leftovers = [s for s in ("sysfs_", "kernel_kobj", "bin_attribute") if s in source]
    assert not leftovers, f"the sysfs file must be replaced, not kept: {leftovers}"
    block = kconfig.split("config IKHEADERS\n", 1)[1].split("\nconfig ", 1)[0]
    assert f"depends on {expected.depends_on}\n" in block
    assert "SYSFS" not in block
    (path,) = [v.archive_path for v in VARIANTS if v.patch_series == name]
    assert path in block, f"the IKHEADERS prompt should name {path}"


@pytest.mark.parametrize("version", sorted(FIXTURES), ids=str)
@pytest.mark.parametrize("name", SERIES)
def test_drifted_tree_is_an_error_naming_patch_version_and_file(
        tmp_path: Path, name: str, version: KernelVersion) -> None:
    """Failure injection: a kheaders.c the patch does not fit (its removal line changed)."""
    src = _fake_tree(tmp_path, version)
    c_file = src / "kernel/kheaders.c"
    drifted = c_file.read_text().replace("sysfs_remove_bin_file(kernel_kobj, &kheaders_attr);",
                                         "sysfs_remove_bin_file(kernel_kobj, &kheaders_attr2);")
    assert drifted != c_file.read_text()
    c_file.write_text(drifted)
    series = worktree.pick_series(PATCHES_DIR, name, version)
    want = (rf"^carried patch {name}/{re.escape(series.range)}/0001-\S+\.patch does not apply "
            rf"to {re.escape(str(version))}: first failing file kernel/kheaders\.c$")
    with pytest.raises(PatchFailed, match=want):
        worktree.sync(src, tmp_path / "work", version, series)
    assert c_file.read_text() == drifted, "the source tree was written"


def test_parser_rejects_a_short_hunk() -> None:
    good = "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n x\n-y\n+z\n"
    assert parse_unified(good) == [FileDiff("a/f", "b/f", 1)]
    with pytest.raises(ValueError, match="inside a hunk"):
        parse_unified(good.replace(" x\n", ""))
