"""Compile timing without a VM: stats, the regression rule, the JSON schema, the plot, the
summary table, the host-side pre-installed tree, and the guest script itself run on the host
against a synthetic archive (the workload against a real archive: vmtests/test_real_archive.py)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path, PurePosixPath
from typing import Any, cast

import pytest

from kheaders_suite.errors import UserError
from kheaders_suite.session.guest import Guest
from kheaders_suite.timing import (
    compare,
    plot,
    preinstalled,
    results,
    runner,
    summary,
    sweep,
    workload,
)
from kheaders_suite.timing.stats import summarize

STEADY = [1.00, 1.01, 0.99, 1.02, 1.00]


# --- stats and sweep plans -------------------------------------------------------------------

def test_summary_median_min_max_spread() -> None:
    s = summarize([3.0, 1.0, 2.0, 2.0])
    assert (s.count, s.median, s.min, s.max) == (4, 2.0, 1.0, 3.0)
    assert s.spread == pytest.approx(1.0)
    assert summarize([2.0]).spread == 0.0
    with pytest.raises(ValueError, match="no samples"):
        summarize([])


@pytest.mark.parametrize(("cpus", "full", "ns"), [
    (2, True, (1, 2, 4)), (2, False, (1, 2, 4)), (3, True, (1, 2, 4, 6)), (1, True, (1, 2)),
    (4, True, (1, 2, 4, 8)), (1, False, (1, 2)),
])
def test_parallelism_powers_of_two_up_to_twice_the_cpus(cpus: int, full: bool,
                                                        ns: tuple[int, ...]) -> None:
    assert sweep.parallelism(cpus, full) == ns


def test_reduced_sweep_is_small_and_full_is_complete() -> None:
    reduced, full = sweep.plan_for("reduced", 2), sweep.plan_for("full", 2)
    assert reduced.reps >= 3
    assert full.reps >= 5
    assert len(reduced.files) == 1
    assert reduced.warmup_ns == (1,)
    assert full.warmup_ns == full.ns
    assert reduced.points() == (("extract-once", 1), ("per-invocation", 1),
                                ("pre-installed", 1), ("extract-once", 2),
                                ("extract-once", 4), ("per-invocation", 4))
    assert len(full.points()) == 3 * len(full.ns)
    assert full.files == workload.all_sources()
    assert len(full.files) >= 5
    assert reduced.compiles() < full.compiles()
    with pytest.raises(UserError, match="reduced"):
        sweep.plan_for("huge", 2)


def test_guest_timeout_grows_with_the_sweep_and_the_scale() -> None:
    reduced, full = sweep.plan_for("reduced", 2), sweep.plan_for("full", 2)
    assert 0 < runner.timeout_for(reduced, 1.0) < runner.timeout_for(full, 1.0)
    assert runner.timeout_for(reduced, 5.0) == 5 * runner.timeout_for(reduced, 1.0)


# --- compiler command lines ------------------------------------------------------------------

def test_gcc_command_line_is_bcc_like() -> None:
    argv = workload.fill(workload.gcc_template("x86"), "/r", "/s/a.c", "/o/a.o")
    assert argv[:3] == ("gcc", "-c", "-O2")
    assert "-D__KERNEL__" in argv
    assert "-fno-stack-protector" in argv
    assert argv[argv.index("-include") + 1] == "/r/include/linux/kconfig.h"
    incs = [a[2:] for a in argv if a.startswith("-I")]
    assert incs == ["/r/arch/x86/include", "/r/arch/x86/include/generated",
                    "/r/arch/x86/include/uapi", "/r/arch/x86/include/generated/uapi",
                    "/r/include", "/r/include/uapi", "/r/include/generated/uapi"]
    assert argv[-3:] == ("/s/a.c", "-o", "/o/a.o")


def test_clang_bpf_is_bccs_front_end_for_the_machines_own_triple() -> None:
    argv = workload.fill(workload.clang_bpf_template("arm64"), "/r", "a.c", "a.o")
    assert argv[0] == "clang-14"  # the LLVM bcc 0.26 links (libclang1-14 beside it)
    assert not any(a.lstrip("-").startswith("target") for a in argv)
    assert {"-emit-llvm", "-D__BPF_TRACING__", "-fno-jump-tables"} <= set(argv)
    assert "-I/r/arch/arm64/include/generated/uapi" in argv
    assert "-Wno-duplicate-decl-specifier" not in argv
    x86 = workload.clang_bpf_template("x86")
    assert {"-Wno-duplicate-decl-specifier", "-fcf-protection"} <= set(x86)
    assert set(workload.templates("x86")) == {"gcc", workload.CLANG_BPF}


def test_clang_bpf_points_reduced_and_full() -> None:
    reduced, full = sweep.plan_for("reduced", 2), sweep.plan_for("full", 2)
    assert reduced.clang_bpf == (("per-invocation", 1), ("extract-once", 1))
    assert full.clang_bpf == full.points()
    assert sweep.plan_for("reduced", 2, frontend=False).clang_bpf == ()  # --frontend-arch
    cfg = sweep.guest_config(reduced, workdir="/w", archive="/a.tar.xz", preinstalled="/p",
                             sources=("/s/x.c",), srcarch="x86")
    assert cfg["points"][workload.CLANG_BPF] == [["per-invocation", 1], ["extract-once", 1]]
    without = sweep.SweepPlan(**{**reduced.__dict__, "clang_bpf": ()})
    assert reduced.compiles() == without.compiles() + reduced.reps * 2 * len(reduced.files)


def test_guest_config_is_plain_json() -> None:
    plan = sweep.plan_for("reduced", 2)
    cfg = sweep.guest_config(plan, workdir="/w", archive="/a.tar.xz", preinstalled="/p",
                             sources=("/s/x.c",), srcarch="x86")
    assert json.loads(json.dumps(cfg)) == cfg
    assert cfg["ns"] == [1, 2, 4]
    assert cfg["skip"] == [["pre-installed", 2], ["pre-installed", 4], ["per-invocation", 2]]
    assert cfg["strategies"] == list(sweep.STRATEGIES)


# --- the regression rule ---------------------------------------------------------------------

def test_clear_regression_is_flagged() -> None:
    assert compare.judge(STEADY, [1.30, 1.32, 1.29, 1.31, 1.35]) == "REGRESSED"
    assert compare.judge([1.30, 1.32, 1.29, 1.31, 1.35], STEADY) == "improved"


@pytest.mark.parametrize("new", [
    [1.00, 1.03, 0.98, 1.01, 0.99],        # the same distribution
    [1.02, 1.05, 1.04, 1.03, 1.30],        # overlapping: one old sample above a new one
    [1.025, 1.026, 1.027, 1.028, 1.029],   # no overlap, but a shift within the ranges/3%
])
def test_noise_is_not_flagged(new: list[float]) -> None:
    assert compare.judge(STEADY, new) == "ok"


def test_wide_noisy_sets_need_a_shift_beyond_their_spread() -> None:
    old = [1.0, 1.4, 1.2, 1.1, 1.3]
    # median shift 0.32 < mean range (0.4 + 0.25) / 2, though every new sample is slower
    assert compare.judge(old, [1.45, 1.5, 1.52, 1.55, 1.7]) == "ok"
    assert compare.judge(old, [1.8, 1.85, 1.9, 1.95, 2.0]) == "REGRESSED"


def test_too_few_samples_are_never_judged() -> None:
    assert compare.judge([1.0, 1.0], [5.0, 5.0, 5.0]) == "few"


def _doc(scale: float = 1.0, host: float = 1.0, **overrides: Any) -> dict[str, Any]:
    """A synthetic result document as results.document() builds it: points ``scale`` times
    the base cost, the calibration loop ``host`` times its base (a slower host)."""
    plan = sweep.plan_for("reduced", 2)
    points = []
    costs = {"extract-once": 1.0, "per-invocation": 2.0, "pre-installed": 0.9}
    for strategy, n in plan.points():
        samples = [round(costs[strategy] * n * scale * (1 + 0.01 * i), 4)
                   for i in range(plan.reps)]
        points.append({"compiler": "gcc", "strategy": strategy, "n": n, "warmup": [9.9],
                       "samples": samples, "tmpfs_peak_bytes": [1000] * 4,
                       "batches": [{"maxrss_kb": {"compile": 100_000}, "job_end": [1.0],
                                    "phase_seconds": {}, "cpu_seconds": 1.0,
                                    "wall": s, "loop_seconds": 0.001 * s,
                                    "spawn_seconds": 0.002}
                                   for s in [9.9, *samples]]})
    raw = {"environment": {"compiler_versions": {"gcc": "gcc 12"}, "cpus": 2},
           "extraction": {"warmup": [2.5], "samples": [2.0, 2.1, 2.2], "tmpfs_bytes": 30_000_000,
                          "files": 7028, "bytes": 29_000_000},
           "overhead": [{"strategy": s, "n": n, "steps": 2, "warmup": [0.01],
                         "samples": [0.004, 0.005, 0.004]}
                        for s, n in plan.points()],
           "points": points, "failures": [], "compilers_skipped": {"clang-bpf": "absent"},
           "calibration": {"argv": list(sweep.CALIBRATION), "warmup": [0.5],
                           "samples": [0.5 * host, 0.51 * host, 0.49 * host]}}
    doc = results.document(raw, arch="x86_64", variant="sysfs", release="6.12.117",
                           accel="tcg", guest_cpus=2, online_cpus=2, plan=plan,
                           archive="/sys/kernel/kheaders.tar.xz", preinstalled="/p")
    doc.update(overrides)
    return doc


def test_compare_cli_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, same, slow = tmp_path / "old.json", tmp_path / "same.json", tmp_path / "slow.json"
    old.write_text(json.dumps(_doc()))
    same.write_text(json.dumps(_doc(1.005)))
    slow.write_text(json.dumps(_doc(1.5)))
    assert compare.main([str(old), str(same)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 + 6  # extraction + 3 strategies x 2 N, one line each
    assert all(line.startswith("ok") for line in out)
    assert compare.main([str(old), str(slow)]) == 1
    text = capsys.readouterr().out
    assert text.count("REGRESSED") == 6
    assert "extraction" in text
    (tmp_path / "bad.json").write_text("{}")
    assert compare.main([str(old), str(tmp_path / "bad.json")]) == 2


def test_a_uniformly_slower_host_is_divided_out(tmp_path: Path) -> None:
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(_doc()))
    new.write_text(json.dumps(_doc(1.25, host=1.25)))  # everything 25% slower, calibration too
    assert compare.main([str(old), str(new)]) == 0
    assert compare.host_speed(_doc(), _doc(host=1.25)) == pytest.approx(1.25)
    verdicts = compare.compare(_doc(), _doc(1.6, host=1.25))  # 28% slower beyond the host
    assert {v.status for v in verdicts if "extraction" not in v.key} == {"REGRESSED"}
    assert "host-speed adjusted" in verdicts[-1].line()
    assert compare.host_speed(_doc(), _doc(calibration={})) == 1.0


def test_compare_notes_different_run_identity() -> None:
    assert compare.notes(_doc(), _doc(accel="kvm")) == ["note: accel differs: 'tcg' -> 'kvm'"]
    assert "calibration loop ran 25.0% slower" in compare.notes(_doc(), _doc(host=1.25))[0]
    assert compare.notes(_doc(), _doc(guest_cpus=4)) == []  # asked-for CPUs do not matter


# --- schema, summary, plot -------------------------------------------------------------------

def test_document_is_valid_and_validate_finds_problems() -> None:
    doc = _doc()
    assert results.validate(doc) == []
    assert results.validate(json.loads(json.dumps(doc))) == []
    broken = _doc()
    del broken["release"]
    broken["points"][0]["samples"] = [1.0, -0.5]
    problems = results.validate(broken)
    assert any(p.startswith("release") for p in problems)
    assert any("not all positive" in p for p in problems)
    assert results.validate([]) == ["document is not an object"]


def test_write_and_load_round_trip(tmp_path: Path) -> None:
    doc = _doc()
    path = results.write(doc, tmp_path)
    assert path.name == "x86_64-sysfs.json"
    assert results.load(path) == json.loads(json.dumps(doc))
    (tmp_path / "junk.json").write_text("not json")
    assert len(list(results.load_dir(tmp_path))) == 1


def test_summary_table(tmp_path: Path) -> None:
    record = {"kind": "timing", "target": "x86_64-sysfs",
              **summary.record_fields(_doc(), tmp_path / "x.json")}
    bcc = {"kind": "bcc", "target": "x86_64-sysfs", "cold": [12.0], "warm": [8.0]}
    lines = summary.summary_lines([{"kind": "boot", "target": "t"}, record, bcc])
    text = "\n".join(lines)
    assert lines[1] == summary.HEADER
    for strategy in sweep.STRATEGIES:
        assert strategy in text
    assert "one-time extraction 2.10s" in text
    assert "clang-bpf skipped" in text
    assert "cold 12.00s" in text
    assert summary.summary_lines([{"kind": "boot", "target": "t"}]) == []
    over = summary.overhead_fields(_doc())
    assert len(over) == 6
    assert all(o["empty"] is not None and o["empty"] < 0.01 for o in over)
    assert all(o["harness"] == pytest.approx(0.001) for o in over)
    assert all(o["spawn"] is not None and o["spawn"] < 0.01 for o in over)
    assert json.loads(json.dumps(record)) == record  # storable in results.json


def test_plot_written_from_synthetic_samples(tmp_path: Path) -> None:
    path = plot.write_plot([_doc(), _doc(1.2, variant="module")], tmp_path / "p.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results.write(_doc(), tmp_path)
    combined = plot.refresh_combined(tmp_path)
    assert combined is not None
    assert combined.stat().st_size > 0


# --- host-side pre-installed tree ------------------------------------------------------------

def _synthetic_archive(path: Path, marker: str = "1") -> Path:
    files = {
        "include/linux/kconfig.h": "#define IS_ENABLED(x) 0\n",
        "include/linux/sched.h": f"struct task_struct {{ int pid; int marker{marker}; }};\n",
        "arch/x86/include/asm/ptrace.h": "struct pt_regs { unsigned long ip, sp; };\n",
        "include/generated/autoconf.h": "#define CONFIG_X 1\n",
    }
    with tarfile.open(path, "w:xz") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text.encode()))
    return path


def test_preinstalled_extracts_once_and_again_on_a_new_archive(tmp_path: Path) -> None:
    archive = _synthetic_archive(tmp_path / "a.tar.xz")
    dest = preinstalled.extract(archive, tmp_path / preinstalled.DIRNAME)
    header = dest / "include/linux/sched.h"
    assert "marker1" in header.read_text()
    stamp_time = (dest / preinstalled.STAMP).stat().st_mtime_ns
    preinstalled.extract(archive, dest)
    assert (dest / preinstalled.STAMP).stat().st_mtime_ns == stamp_time  # untouched
    _synthetic_archive(archive, marker="2")
    preinstalled.extract(archive, dest)
    assert "marker2" in header.read_text()
    assert not (tmp_path / f"{preinstalled.DIRNAME}.partial").exists()


# --- the guest script, run on the host -------------------------------------------------------

WORKLOAD_SNIPPET = """\
#include <asm/ptrace.h>
#include <linux/sched.h>
int pid_of(struct pt_regs *ctx, struct task_struct *t) { return t->pid + (int)(ctx->ip & 1); }
"""


class HostDirGuest:
    """What runner.upload_bench asks of a guest, done in a host directory for GUEST_DIR."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _host(self, path: str) -> Path:
        return self.root / PurePosixPath(path).relative_to(runner.GUEST_DIR)

    def run(self, argv: tuple[str, ...], check: bool = False) -> None:
        assert argv[:2] == ("mkdir", "-p"), argv
        for directory in argv[2:]:
            self._host(directory).mkdir(parents=True, exist_ok=True)

    def write_bytes(self, path: str, data: bytes) -> None:
        self._host(path).write_bytes(data)


def run_bench(directory: Path, cfg: Path) -> Any:
    """compilebench.py's JSON, run from ``directory`` as runner.upload_bench leaves the guest's
    upload directory: with -S -E, only what it uploaded and the stdlib can be imported."""
    runner.upload_bench(cast(Guest, HostDirGuest(directory)))
    out = subprocess.run((sys.executable, "-S", "-E", str(directory / "compilebench.py"),
                          str(cfg)), capture_output=True, text=True, timeout=300, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("xz") is None,
                    reason="needs gcc and xz")
def test_compilebench_runs_every_strategy_and_prints_raw_samples(tmp_path: Path) -> None:
    archive = _synthetic_archive(tmp_path / "k.tar.xz")
    tree = preinstalled.extract(archive, tmp_path / "pre")
    src = tmp_path / "prog.c"
    src.write_text(WORKLOAD_SNIPPET)
    plan = sweep.SweepPlan(sweep="reduced", ns=(1, 2), reps=2, warmup=1, warmup_ns=(1,),
                           extract_reps=2, files=(src,), skip=(("pre-installed", 2),))
    cfg = sweep.guest_config(plan, workdir=str(tmp_path / "work"), archive=str(archive),
                             preinstalled=str(tree), sources=(str(src), str(src)),
                             srcarch="x86")
    cfg["compilers"]["clang-bpf"][0] = "no-such-clang"
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    raw = run_bench(tmp_path, tmp_path / "cfg.json")
    assert raw["failures"] == []
    assert "clang-bpf" in raw["compilers_skipped"]
    assert len(raw["extraction"]["samples"]) == 2
    assert raw["extraction"]["files"] == 4
    keys = {(p["strategy"], p["n"]) for p in raw["points"]}
    assert keys == set(plan.points())
    assert ("pre-installed", 2) not in keys
    for point in raw["points"]:
        assert len(point["samples"]) == 2
        assert len(point["warmup"]) == (1 if point["n"] == 1 else 0)
        assert all(s > 0 for s in point["samples"])
        assert all(len(b["job_end"]) == point["n"] for b in point["batches"])
    per = next(p for p in raw["points"] if p["strategy"] == "per-invocation")
    assert set(per["batches"][0]["phase_seconds"]) == {"extract", "compile", "cleanup"}
    assert {(o["strategy"], o["n"]) for o in raw["overhead"]} == set(plan.points())
    assert len(raw["calibration"]["samples"]) == plan.reps
    assert all(c > 0 for c in raw["calibration"]["samples"])
    for point in raw["points"]:
        for batch in point["batches"]:
            assert 0 < batch["loop_seconds"] < batch["wall"]
            assert 0 < batch["spawn_seconds"] < batch["wall"]
    doc = _doc()
    doc.update(results.document(raw, arch="x86_64", variant="sysfs", release="r", accel="tcg",
                                guest_cpus=2, online_cpus=1, plan=plan, archive="a",
                                preinstalled="p"))
    assert results.validate(doc) == []


def _small_plan(src: Path, clang_bpf: tuple[tuple[str, int], ...] = ()) -> sweep.SweepPlan:
    return sweep.SweepPlan(sweep="reduced", ns=(1,), reps=1, warmup=0, warmup_ns=(),
                           extract_reps=1, files=(src,), clang_bpf=clang_bpf)


def _bench_config(tmp_path: Path, plan: sweep.SweepPlan) -> dict[str, Any]:
    archive = _synthetic_archive(tmp_path / "k.tar.xz")
    tree = preinstalled.extract(archive, tmp_path / "pre")
    return sweep.guest_config(plan, workdir=str(tmp_path / "work"), archive=str(archive),
                              preinstalled=str(tree), sources=tuple(map(str, plan.files)),
                              srcarch="x86")


@pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("xz") is None,
                    reason="needs gcc and xz")
def test_compilebench_keeps_a_second_compilers_failure(tmp_path: Path) -> None:
    """A compiler other than gcc that fails against the archive is a failure, not a skip."""
    src = tmp_path / "prog.c"
    src.write_text(WORKLOAD_SNIPPET)
    cfg = _bench_config(tmp_path, _small_plan(src, (("extract-once", 1),)))
    # a real compile error: gcc standing in for clang, the archive lacking a header it needs
    cfg["compilers"][workload.CLANG_BPF] = ["gcc", "-c", "-include", "{root}/no/such.h",
                                            "{src}", "-o", "{out}"]
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    raw = run_bench(tmp_path, tmp_path / "cfg.json")
    assert [(f["compiler"], f["strategy"], f["step"].split(":")[0])
            for f in raw["failures"]] == [(workload.CLANG_BPF, "probe", "compile")]
    assert "no/such.h" in raw["failures"][0]["stderr"]
    assert workload.CLANG_BPF not in raw["environment"]["compiler_versions"]
    assert {p["compiler"] for p in raw["points"]} == {"gcc"}


@pytest.mark.skipif(shutil.which("clang-14") is None or shutil.which("xz") is None,
                    reason="needs clang-14 (ci/setup) and xz")
def test_compilebench_times_clang_bpf(tmp_path: Path) -> None:
    src = tmp_path / "prog.c"
    src.write_text(WORKLOAD_SNIPPET)
    plan = _small_plan(src, sweep.CLANG_BPF_REDUCED)
    (tmp_path / "cfg.json").write_text(json.dumps(_bench_config(tmp_path, plan)))
    raw = run_bench(tmp_path, tmp_path / "cfg.json")
    assert raw["failures"] == [], raw["failures"]
    assert raw["environment"]["compiler_versions"][workload.CLANG_BPF].startswith(
        "Debian clang version 14")
    got = {(p["strategy"], p["n"]) for p in raw["points"] if p["compiler"] == workload.CLANG_BPF}
    assert got == set(plan.clang_bpf)
