"""The rules test_bcc judges the guest's probe output by: what bcc's cold and warm runs must do
to $TMPDIR/kheaders-<release>, and whose failure each bcc error is. Shapes as the probe prints
them under TCG on 6.12 (tmpfs inode numbers, the archive's fixed mtime)."""

from typing import Any

import pytest

from vmtests.test_bcc import cache_problems, environment_problem, whose

CACHE = "/run/kheaders-bcc/kheaders-6.12.118"
TREE = [2, 1556236800000000000, 0]  # inode, mtime_ns, uid of the extracted tree
AGAIN = [7040, 1556236800000000000, 0]  # the same tree extracted once more


def run(mode: str, before: list[int] | None, after: list[int] | None,
        **change: Any) -> dict[str, Any]:
    out = {"mode": mode, "cache": CACHE, "euid": 0, "before": before,
           "after_delete": None if mode == "cold" else before, "after": after,
           "new_entries": ["kheaders-6.12.118"] if mode == "cold" else [],
           "inodes_during": 7034 if mode == "cold" else 3, "tree_inodes": 7033,
           "cache_has_kconfig": after is not None}
    return {**out, **change}


def good() -> list[dict[str, Any]]:
    return [run("cold", None, TREE), run("warm", TREE, TREE),
            run("cold", TREE, AGAIN), run("warm", AGAIN, AGAIN)]


def test_cold_then_warm_as_bcc_does_it_passes() -> None:
    assert cache_problems(good()) == []


@pytest.mark.parametrize(("index", "change", "problem"), [
    # the probe recording "before" after its own delete (the old order)
    (2, {"before": None}, "left by the run before was not seen"),
    (0, {"after_delete": TREE}, "still there after the delete"),
    (0, {"inodes_during": 5}, "bcc did not extract it there"),
    (0, {"new_entries": ["kheaders-6.12.118", "kheaders-6.12.118-Ab12Cd"]}, "bcc left"),
    (1, {"before": None}, "no /run/kheaders-bcc/kheaders-6.12.118 from the cold run"),
    (1, {"after": AGAIN}, "replaced"),
    (1, {"inodes_during": 7034}, "extracted again"),  # extracted, then threw it away
    (1, {"new_entries": ["kheaders-6.12.118-Ab12Cd"]}, "left a copy beside it"),
    (3, {"after": [7040, 1556236800000000000, 1000]}, "not root-owned"),
    (1, {"after": None, "cache_has_kconfig": False}, "no /run/kheaders-bcc"),
])
def test_every_other_outcome_is_named(index: int, change: dict[str, Any],
                                      problem: str) -> None:
    runs = good()
    runs[index] = {**runs[index], **change}
    problems = cache_problems(runs)
    assert any(problem in p for p in problems), problems


def reextracting() -> list[dict[str, Any]]:
    """What Debian's bcc 0.26.0+ds-1 did: every warm run extracted a whole tree again."""
    return [{**r, "inodes_during": 7034} for r in good()]


def test_a_bcc_known_to_extract_every_run_is_held_to_that() -> None:
    assert cache_problems(reextracting(), reuses=False) == []
    assert any("extracted again" in p for p in cache_problems(reextracting()))
    problems = cache_problems(good(), reuses=False)
    assert any("did not extract again" in p for p in problems), problems
    replaced = reextracting()
    replaced[1] = {**replaced[1], "after": AGAIN}
    assert any("replaced" in p for p in cache_problems(replaced, reuses=False))


@pytest.mark.parametrize(("error", "owner"), [
    ("Exception: Failed to compile BPF module <text>", "archive's headers"),
    ("Exception: Failed to load BPF program b'kprobe__vfs_read': Invalid argument", "kernel"),
    ("Exception: Need super-user privileges to run", "EPERM"),
    ("Exception: Failed to attach BPF program b'kprobe__vfs_read' to kprobe b'vfs_read'",
     "kprobe"),
])
def test_each_bcc_error_names_whose_it_is(error: str, owner: str) -> None:
    assert owner in whose(error)


def test_only_a_non_root_guest_is_the_environment() -> None:
    assert environment_problem(run("cold", None, TREE)) is None
    assert "needs root" in str(environment_problem(run("cold", None, TREE, euid=1000)))
