"""Issue 14 without a VM: clang's front end on headers from memory (inguest/frontend.py)
and the sweep's in-memory strategy, run on the host against a synthetic archive with the
host's libclang (ci/setup installs python3-clang-14)."""

from __future__ import annotations

import dataclasses
import glob
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from kheaders_suite.errors import UserError
from kheaders_suite.inguest import source
from kheaders_suite.plugin import options as settings
from kheaders_suite.timing import (
    claims,
    noise,
    plot,
    preinstalled,
    results,
    runner,
    summary,
    sweep,
)
from kheaders_suite.timing.stats import summarize
from tests.test_timing import WORKLOAD_SNIPPET, _doc, _synthetic_archive, run_bench

HAVE_LIBCLANG = any(glob.glob(g) for g in ("/usr/lib/*/libclang-*.so.1",
                                            "/usr/lib/llvm-*/lib/libclang-*.so.1"))
HAVE_CINDEX = Path(runner.HOST_CINDEX, "cindex.py").is_file()
needs_libclang = pytest.mark.skipif(not (HAVE_LIBCLANG and HAVE_CINDEX),
                                    reason="needs libclang and python3-clang (ci/setup)")


def _guest_dir(tmp_path: Path) -> Path:
    """frontend.py with the host's cindex beside it, as runner.upload_frontend lays it out."""
    (tmp_path / "clang").mkdir()
    for path in Path(runner.HOST_CINDEX).glob("*.py"):
        (tmp_path / "clang" / path.name).write_bytes(path.read_bytes())
    (tmp_path / "frontend.py").write_bytes(source("frontend.py"))
    args = list(sweep.frontend_args("x86"))
    (tmp_path / "clang-args.json").write_text(json.dumps(args))
    (tmp_path / "prog.c").write_text(WORKLOAD_SNIPPET)
    return tmp_path


def _frontend(d: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run((sys.executable, str(d / "frontend.py"), *argv), capture_output=True,
                          text=True, timeout=120)


def _without(archive: Path, dest: Path, name: str) -> Path:
    """A copy of ``archive`` lacking member ``name``."""
    with tarfile.open(archive) as src, tarfile.open(dest, "w:xz") as out:
        for member in src:
            if member.name != name:
                out.addfile(member, src.extractfile(member))
    return dest


@needs_libclang
def test_parse_from_memory_needs_no_file_on_disk(tmp_path: Path) -> None:
    d = _guest_dir(tmp_path)
    archive = _synthetic_archive(tmp_path / "k.tar.xz")
    ok = _frontend(d, "parse", str(d / "clang-args.json"), str(d / "prog.c"),
                   "--archive", str(archive))
    assert ok.returncode == 0, ok.stderr
    assert not Path("/kheaders-in-memory").exists()
    # the broken case: the header missing from the archive is an error, not a pass
    lacking = _without(archive, tmp_path / "lacking.tar.xz", "include/linux/kconfig.h")
    bad = _frontend(d, "parse", str(d / "clang-args.json"), str(d / "prog.c"),
                    "--archive", str(lacking))
    assert bad.returncode == 1
    assert "linux/kconfig.h' file not found" in bad.stderr


@needs_libclang
def test_parse_from_a_tree_and_the_version(tmp_path: Path) -> None:
    d = _guest_dir(tmp_path)
    tree = preinstalled.extract(_synthetic_archive(tmp_path / "k.tar.xz"), tmp_path / "pre")
    ok = _frontend(d, "parse", str(d / "clang-args.json"), str(d / "prog.c"), "--root", str(tree))
    assert ok.returncode == 0, ok.stderr
    (tree / "arch/x86/include/asm/ptrace.h").write_text("struct pt_regs { int sp; };\n")
    bad = _frontend(d, "parse", str(d / "clang-args.json"), str(d / "prog.c"), "--root", str(tree))
    assert bad.returncode == 1
    assert "no member named 'ip'" in bad.stderr
    assert _frontend(d, "version").stdout.startswith("libclang: ")


@needs_libclang
def test_resident_compares_memory_tmpfs_and_the_shared_tree(tmp_path: Path) -> None:
    d = _guest_dir(tmp_path)
    archive = _synthetic_archive(tmp_path / "k.tar.xz")
    tree = preinstalled.extract(archive, tmp_path / "pre")
    plan = sweep.SweepPlan(sweep="reduced", ns=(1, 2), reps=2, warmup=1, warmup_ns=(1,),
                           extract_reps=1, files=(d / "prog.c",), resident_ns=(1, 2))
    (tmp_path / "work").mkdir()
    cfg = sweep.resident_config(plan, workdir=str(tmp_path / "work"), archive=str(archive),
                                preinstalled=str(tree), sources=(str(d / "prog.c"),),
                                args=json.loads((d / "clang-args.json").read_text()))
    (d / "resident.json").write_text(json.dumps(cfg))
    out = _frontend(d, "resident", str(d / "resident.json"))
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["failures"] == 0
    assert res["files"] == 4
    assert {(p["source"], p["n"]) for p in res["points"]} == {
        (s, n) for s in ("memory", "memory-used", "tmpfs", "shared") for n in (1, 2)}
    assert all(len(p["samples"]) == 2 and min(p["samples"]) > 0 for p in res["points"])
    assert not (tmp_path / "work/resident-tree").exists()
    (d / "resident.json").write_text(json.dumps({**cfg, "headers": ["tmpfs"]}))
    only = json.loads(_frontend(d, "resident", str(d / "resident.json")).stdout)
    assert {p["source"] for p in only["points"]} == {"tmpfs"}
    (d / "resident.json").write_text(json.dumps(cfg))
    # the broken case: a source that does not compile counts as failed parses
    (d / "prog.c").write_text("#include <linux/nothere.h>\n")
    broken = json.loads(_frontend(d, "resident", str(d / "resident.json")).stdout)
    assert broken["failures"] == 4 * (1 + 2 * (1 + 2))


@needs_libclang
def test_compilebench_measures_the_in_memory_strategy(tmp_path: Path) -> None:
    d = _guest_dir(tmp_path)
    archive = _synthetic_archive(tmp_path / "k.tar.xz")
    tree = preinstalled.extract(archive, tmp_path / "pre")
    frontend = (("in-memory", 1), ("extract-once", 1), ("in-memory", 2), ("extract-once", 2))
    plan = sweep.SweepPlan(sweep="reduced", ns=(1, 2), reps=2, warmup=1, warmup_ns=(1,),
                           extract_reps=1, files=(d / "prog.c",), skip=(("pre-installed", 2),),
                           frontend=frontend)
    cfg = sweep.guest_config(plan, workdir=str(tmp_path / "work"), archive=str(archive),
                             preinstalled=str(tree), sources=(str(d / "prog.c"),),
                             srcarch="x86", frontend=str(d / "frontend.py"))
    cfg["compilers"]["clang-bpf"][0] = "no-such-clang"
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    raw = run_bench(tmp_path, tmp_path / "cfg.json")
    assert raw["failures"] == [], raw["failures"]
    assert raw["environment"]["compiler_versions"]["libclang"].startswith("libclang: ")
    got = {(p["strategy"], p["n"]) for p in raw["points"] if p["compiler"] == sweep.FRONTEND}
    assert got == set(frontend)
    gcc = {(p["strategy"], p["n"]) for p in raw["points"] if p["compiler"] == "gcc"}
    assert gcc == set(plan.points())  # no in-memory point for gcc
    memory = [p for p in raw["points"] if p["strategy"] == "in-memory"]
    for point in memory:
        assert all(set(b["phase_seconds"]) == {"compile"} for b in point["batches"])
    assert {(o["strategy"], o["n"]) for o in raw["overhead"]} == set(plan.points())


def test_frontend_points_reduced_and_full() -> None:
    reduced, full = sweep.plan_for("reduced", 2), sweep.plan_for("full", 2)
    assert reduced.frontend == (("in-memory", 4), ("extract-once", 4))
    assert reduced.resident_ns == (1,)
    assert reduced.resident_sources == ("memory-used", "tmpfs")
    assert full.resident_sources == ("memory", "memory-used", "tmpfs", "shared")
    assert set(full.frontend) == {(s, n) for s in sweep.FRONTEND_STRATEGIES for n in full.ns}
    assert full.resident_ns == full.ns
    assert 0 < reduced.resident_parses() < full.resident_parses()
    with_frontend = sweep.guest_config(reduced, workdir="/w", archive="/a", preinstalled="/p",
                                       sources=("/s.c",), srcarch="x86", frontend="/g/fe.py")
    assert with_frontend["compilers"][sweep.FRONTEND] == [
        "python3", "/g/fe.py", "parse", "/g/clang-args.json", "{src}", "--root", "{root}"]
    assert with_frontend["in_memory"][sweep.FRONTEND][-2:] == ["--archive", "{archive}"]
    assert with_frontend["strategies"][0] == "in-memory"
    plain = sweep.guest_config(reduced, workdir="/w", archive="/a", preinstalled="/p",
                               sources=("/s.c",), srcarch="x86")
    assert sweep.FRONTEND not in plain["compilers"]
    assert sweep.FRONTEND not in plain["points"]


def _resident_doc() -> dict[str, Any]:
    def point(source: str, n: int, samples: list[float]) -> dict[str, Any]:
        return {"source": source, "n": n, "warmup": [samples[0]], "samples": samples,
                "batches": [{"wall": s, "maxrss_kb": 190000, "cpu_seconds": s * 0.9,
                             "failed": 0} for s in [samples[0], *samples]]}
    return {"decompress_seconds": 4.2, "files": 7192, "bytes": 32_781_923, "failures": 0,
            "roots": {}, "points": [point("memory", 1, [3.1, 3.2, 3.0]),
                                    point("tmpfs", 1, [3.0, 3.1, 3.2]),
                                    point("shared", 1, [5.0, 5.5, 5.2])]}


def test_resident_in_the_summary_and_the_plot(tmp_path: Path) -> None:
    doc = _doc()
    doc["resident"] = _resident_doc()
    assert results.validate(doc) == []
    rec = summary.record_fields(doc)
    assert rec["resident"]["decompress_seconds"] == 4.2
    assert {p["source"] for p in rec["resident"]["points"]} == {"memory", "tmpfs", "shared"}
    lines = summary.summary_lines([{**rec, "kind": "timing"}])
    assert any("headers memory      N=1  median 3.100s" in line for line in lines)
    assert plot.write_plot([doc], tmp_path / "p.png").stat().st_size > 0
    assert summary.record_fields(_doc())["resident"] is None


def test_noise_discards_rounds_the_calibration_loop_calls_disturbed() -> None:
    doc = _doc()
    doc["calibration"] = {"samples": [0.60, 0.61, 0.90]}  # round 2: the host slowed the loop
    point: dict[str, Any] = {"samples": [1.00, 1.02, 1.60], "n": 2,
                             "batches": [{"cpu_seconds": c} for c in (2.0, 2.0, 2.1, 2.4)]}
    kept = noise.kept_rounds(doc)
    assert kept == [0, 1]
    assert noise.kept_spread(point["samples"], kept) == pytest.approx(0.02 / 1.01, abs=1e-4)
    assert summarize(point["samples"]).spread > 0.5  # what the table showed before
    assert noise.cpu_per_job(point) == 1.05  # the last three batches are the measured ones
    assert noise.kept_rounds({"calibration": {}}) is None
    assert noise.kept_spread([1.0, 2.0], [0]) is None  # one round left: no spread
    rec = summary.record_fields(doc)
    assert rec["rounds"] == {"measured": 3, "kept": [0, 1]}
    lines = summary.summary_lines([{**rec, "kind": "timing"}])
    assert any("without the 1 of 3 rounds" in line for line in lines)


def _clang_points(memory: list[float], once: list[float]) -> list[dict[str, Any]]:
    def point(strategy: str, samples: list[float]) -> dict[str, Any]:
        return {"compiler": sweep.FRONTEND, "strategy": strategy, "n": 4, "warmup": [],
                "samples": samples, "tmpfs_peak_bytes": [0], "batches": []}
    return [point("in-memory", memory), point("extract-once", once)]


def test_in_memory_claim_holds_when_decompressing_costs_and_fails_when_free() -> None:
    """One slow extract-once batch overlapping the in-memory ones does not flip it
    (medians); decompression for free does."""
    doc = _doc()  # one-time extraction: summarize(doc["extraction"]["samples"]).median
    extraction = summarize(doc["extraction"]["samples"]).median
    doc["points"] += _clang_points([20.1, 20.5, 19.8], [9.0, 9.2, 21.0])
    assert claims.in_memory_ns(doc) == [4]
    assert claims.in_memory_costs_more(doc) == []
    # the broken case: decompressing into memory as fast as reading the extracted tree
    free = _doc()
    free["points"] += _clang_points([9.0 + extraction, 9.3 + extraction, 9.1 + extraction],
                                    [9.0, 9.2, 9.1])
    assert claims.in_memory_costs_more(free) != []


def test_memory_not_faster_claim_fails_when_memory_is_clearly_faster() -> None:
    doc = _doc()
    doc["resident"] = _resident_doc()
    assert claims.memory_not_faster_than_tmpfs(doc) == []
    fast = _doc()
    fast["resident"] = _resident_doc()
    for p in fast["resident"]["points"]:
        if p["source"] == "memory":
            p["samples"] = [1.5, 1.6, 1.55]
    assert claims.memory_not_faster_than_tmpfs(fast) != []
    used = _resident_doc()
    used["points"].append({**used["points"][0], "source": "memory-used",
                           "samples": [1.5, 1.6, 1.55]})
    assert claims.memory_not_faster_than_tmpfs({"resident": used}) != []


def test_frontend_arches_select_which_sweeps_time_clang() -> None:
    assert sweep.plan_for("reduced", 2, frontend=False).frontend == ()
    assert sweep.plan_for("reduced", 2, frontend=False).resident_ns == ()
    assert settings.frontend_arches("none") == ()
    assert settings.frontend_arches("x86_64") == ("x86_64",)
    assert set(settings.frontend_arches("all")) == {"x86_64", "arm64"}
    with pytest.raises(UserError, match="arm64"):
        settings.frontend_arches("sparc")
    ci = dataclasses.replace(_settings(), frontend_arches=("x86_64",))
    assert ci.times_frontend("x86_64")
    assert not ci.times_frontend("arm64")
    assert _settings().times_frontend("arm64")  # default: every arch


def _settings() -> settings.Settings:
    return settings.Settings(kernel_src=None, kernel_package="linux-source-6.12",
                             arches=("x86_64",), accel="tcg", cache_dir=Path("/c"),
                             results_dir=Path("/r"), guest_cpus=2, guest_memory="2G",
                             build_jobs=1, extra_fragments=(), sweep="reduced")


# --- the front-end claims on two recorded sweeps --------------------------------------------
# tests/data/timing/frontend-*.json: Linux 6.12.117 sysfs, TCG, 2 vCPUs, quiet 2-core host,
# every libclang strategy at N=1 and 4 and every parse-only source (2026-11-30).

RECORDED = Path(__file__).parent / "data/timing"


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_front_end_claims_hold_on_the_recorded_sweeps(arch: str) -> None:
    doc = results.load(RECORDED / f"frontend-{arch}-sysfs.json")
    assert results.validate(doc) == []
    assert claims.in_memory_ns(doc) == [1, 4]
    assert claims.in_memory_costs_more(doc) == []
    assert claims.memory_not_faster_than_tmpfs(doc) == []


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_front_end_claims_fail_on_the_recorded_sweeps_made_to_say_otherwise(arch: str) -> None:
    """In-memory runs as fast as extract-once (decompression for free), and headers in
    memory at 60% of the tmpfs parse: both claims must fail."""
    doc = results.load(RECORDED / f"frontend-{arch}-sysfs.json")
    once = {p["n"]: p["samples"] for p in doc["points"]
            if p["compiler"] == sweep.FRONTEND and p["strategy"] == "extract-once"}
    for p in doc["points"]:
        if p["compiler"] == sweep.FRONTEND and p["strategy"] == "in-memory":
            p["samples"] = list(once[p["n"]])
    tmpfs = next(p for p in doc["resident"]["points"] if p["source"] == "tmpfs")
    for p in doc["resident"]["points"]:
        if p["source"] == "memory-used":
            p["samples"] = [0.6 * s for s in tmpfs["samples"]]
    assert len(claims.in_memory_costs_more(doc)) == 2  # N=1 and N=4
    assert len(claims.memory_not_faster_than_tmpfs(doc)) == 1
