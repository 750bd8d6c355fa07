import dataclasses
import os
from pathlib import Path

import pytest

from kheaders_suite.build import inputs, make, steps
from kheaders_suite.build import kernel as build
from kheaders_suite.catalog import arches, variants
from kheaders_suite.catalog.paths import CONFIGS_DIR
from kheaders_suite.records import KernelBuild
from kheaders_suite.source.tree import KernelSource, KernelVersion

from .test_vm import fake_build


def test_key_is_stable_and_sensitive_to_every_input() -> None:
    parts = {"harness": "1", "source": "s", "fragment:base.config": "CONFIG_A=y\n"}
    key = inputs.build_key(parts)
    assert key == inputs.build_key(dict(reversed(list(parts.items()))))
    for name in parts:
        assert inputs.build_key({**parts, name: parts[name] + "x"}) != key


def test_fragments_base_then_arch_then_variant_then_extra() -> None:
    frags = inputs.fragments_for(arches.get("arm64"), variants.get("module"), (Path("/x.config"),))
    assert frags == [CONFIGS_DIR / "base.config", CONFIGS_DIR / "arch-arm64.config",
                     CONFIGS_DIR / "variant-module.config", Path("/x.config")]
    assert all(f.exists() for f in frags[:3])


def test_every_arch_and_variant_has_its_fragment() -> None:
    for arch in arches.names():
        assert (CONFIGS_DIR / arches.get(arch).fragment).is_file()
    for variant in variants.VARIANTS:
        assert (CONFIGS_DIR / variant.fragment).is_file()


def test_build_record_round_trips_through_json() -> None:
    record = fake_build()
    again = KernelBuild.from_json(record.to_json())
    assert again == record
    assert again.cached
    assert isinstance(again.image, Path)


def test_a_cached_build_is_reused_as_this_checkouts_and_marked_used(tmp_path: Path) -> None:
    """The key is of the content: a clone elsewhere may have built it; the checks read the
    headers of the tree asking, and the entry's mtime records the use (CI's pruning)."""
    entry = tmp_path / "builds" / "x86_64-sysfs-k"
    entry.mkdir(parents=True)
    os.utime(entry, ns=(10**9, 10**9))
    built = dataclasses.replace(fake_build(), dir=entry, source_dir=Path("/first/clone"),
                                source_origin="/first/clone")
    here = KernelSource(Path("/second/clone"), KernelVersion(6, 12), "git:1:t", "/second/clone")
    got = build.reused(built, here)
    assert (got.source_dir, got.source_origin) == (here.path, here.origin)
    assert dataclasses.replace(got, source_dir=built.source_dir,
                               source_origin=built.source_origin) == built
    assert entry.stat().st_mtime_ns > 10**9


def test_steps_are_kbuild_quiet_lines_only() -> None:
    log = (b"$ make -j3 bzImage\n  SYNC    include/config/auto.conf\n  CC      kernel/fork.o\n"
           b"  CC      kernel/exit.o\nkernel/fork.c:1: warning: something\n  LD      vmlinux\n"
           b"    indented continuation\n")
    assert steps.count_steps(log) == 4


def test_progress_line_estimates_what_is_left_from_the_previous_count() -> None:
    line = steps.progress_line("make", 500, 2000, 300.0)
    assert line == "make 500/2000 steps (25%), 5m00s elapsed, ~15m00s left"
    assert steps.progress_line("make", 2100, 2000, 60.0).endswith("(99%), 1m00s elapsed, ~0s left")
    assert steps.progress_line("make", 7, None, 42.0) == "make 7 steps, 42s elapsed"


def test_step_counts_are_remembered_per_arch_and_flavor(tmp_path: Path) -> None:
    x86 = arches.get("x86_64")
    assert steps.expected_steps(tmp_path, x86) == x86.cold_build_steps  # nothing counted yet
    steps.remember_steps(tmp_path, x86, 2001)
    steps.remember_steps(tmp_path, arches.get("arm64"), 1700)
    assert steps.expected_steps(tmp_path, x86) == 2001
    assert steps.expected_steps(tmp_path, x86, "debug") is None  # never a plain count
    steps.remember_steps(tmp_path, x86, 2600, "debug")
    assert steps.expected_steps(tmp_path, x86, "debug") == 2600
    assert steps.expected_steps(tmp_path, x86) == 2001
    (tmp_path / steps.STEPS_FILE).write_text("not json")
    assert steps.expected_steps(tmp_path, x86) == x86.cold_build_steps


def _remember_many(cache: Path, worker: int, count: int) -> None:
    for n in range(count):
        steps.remember_steps(cache, arches.get("x86_64"), n, f"w{worker}-{n}")


def _read_many(cache: Path, count: int) -> None:
    """Exits 1 on a read that missed the count remembered before: a half-written file."""
    for _ in range(count):
        if steps.expected_steps(cache, arches.get("x86_64"), "seed") != 7:
            raise SystemExit(1)


def test_step_counts_of_two_processes_at_once_are_all_kept(tmp_path: Path) -> None:
    """xdist workers finish cold builds at once: each count read, changed and written back
    must not drop the other's (a read-modify-write without a lock loses some), and a build
    starting meanwhile must read a whole file (one written in place is empty for a while)."""
    import multiprocessing

    count = 150
    steps.remember_steps(tmp_path, arches.get("x86_64"), 7, "seed")
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_remember_many, args=(tmp_path, w, count))
               for w in range(2)]
    workers.append(context.Process(target=_read_many, args=(tmp_path, 20 * count)))
    for proc in workers:
        proc.start()
    for proc in workers:
        proc.join(60)
        assert proc.exitcode == 0
    x86 = arches.get("x86_64")
    lost = [(w, n) for w in range(2) for n in range(count)
            if steps.expected_steps(tmp_path, x86, f"w{w}-{n}") != n]
    assert lost == []


def test_a_timed_out_command_leaves_no_process_of_its_group(tmp_path: Path) -> None:
    """make's compilers are its children: a timeout must end them too, not make alone."""
    import time

    from kheaders_suite.errors import BuildFailed

    pidfile = tmp_path / "child.pid"
    runner = make.Runner(tmp_path / "log", {}, lambda m: None, "t", timeout=1.0)
    script = f"sleep 60 & echo $! > {pidfile}; wait"
    with pytest.raises(BuildFailed, match="exceeded 1s"):
        runner.run(("sh", "-c", script))
    child = Path(f"/proc/{pidfile.read_text().strip()}/stat")
    time.sleep(0.2)
    # Gone, or a zombie waiting for init to reap it: not running either way.
    assert not child.exists() or child.read_text().split(") ")[1][0] == "Z"


def test_cold_builds_take_turns_and_incremental_ones_do_not_wait(tmp_path: Path) -> None:
    from kheaders_suite.errors import InfraError
    from kheaders_suite.host.locks import file_lock

    opts = build.BuildOptions(cache_dir=tmp_path, timeout=0.2)
    said: list[str] = []
    with file_lock(tmp_path / build.COLD_BUILD_LOCK, 1.0):  # another cold build runs
        with build._cold_build_slot(opts, False, "x86_64-module", said.append):
            pass
        with pytest.raises(InfraError, match="waited"), \
                build._cold_build_slot(opts, True, "arm64-sysfs", said.append):
            pass
    assert said == [f"arm64-sysfs: waiting for another cold build "
                    f"({tmp_path / build.COLD_BUILD_LOCK})"]


def _key(tmp_path: Path, fragment_text: str, version: KernelVersion) -> str:
    frag = tmp_path / "extra.config"
    frag.write_text(fragment_text)
    src = KernelSource(tmp_path, version, "fake", "fake")
    opts = build.BuildOptions(cache_dir=tmp_path, extra_fragments=(frag,))
    return inputs.build_key(build.key_inputs(src, arches.get("x86_64"), variants.get("sysfs"),
                                            opts))


def test_key_follows_what_a_fragment_asks_of_this_version_not_its_text(tmp_path: Path) -> None:
    old, new = KernelVersion(6, 12, 117), KernelVersion(7, 3, 4)
    base = "CONFIG_A=y\n"
    commented = "# why A\nCONFIG_A=y\n"
    only_new = base + "# when >=7.3\nCONFIG_B=y\n"
    assert _key(tmp_path, commented, old) == _key(tmp_path, base, old)
    assert _key(tmp_path, only_new, old) == _key(tmp_path, base, old)
    assert _key(tmp_path, only_new, new) != _key(tmp_path, base, new)
    assert _key(tmp_path, "CONFIG_A=m\n", old) != _key(tmp_path, base, old)


def test_the_debug_flavor_adds_its_fragment_its_key_and_its_own_object_tree(
        tmp_path: Path) -> None:
    """plain: the fragments, key parts and workspace of before flavors existed (a cache stays
    warm); debug: its fragment after the variant's (a user's still last), a key of its own,
    and a workspace of its own (sharing one would rebuild the whole kernel at every switch)."""
    arch, variant = arches.get("x86_64"), variants.get("module")
    extra = (Path("/x.config"),)
    plain = inputs.fragments_for(arch, variant, extra)
    debug = inputs.fragments_for(arch, variant, extra, "debug")
    assert debug == [*plain[:-1], CONFIGS_DIR / "flavor-debug.config", plain[-1]]
    src = KernelSource(tmp_path, KernelVersion(7, 3, 4), "fake", "fake")

    def parts(flavor: str) -> dict[str, str]:
        opts = build.BuildOptions(cache_dir=tmp_path, flavor=flavor)
        return build.key_inputs(src, arch, variant, opts)

    assert not any("flavor" in k for k in parts("plain"))
    assert "fragment:flavor-debug.config" in parts("debug")
    assert inputs.build_key(parts("debug")) != inputs.build_key(parts("plain"))
    ws = {f: build.workspace(build.BuildOptions(cache_dir=tmp_path, flavor=f), src, arch)
          for f in ("plain", "debug")}
    assert ws["debug"] == ws["plain"].with_name(f"{ws['plain'].name}-debug")


def test_the_debug_fragment_asks_for_the_checkers() -> None:
    from kheaders_suite.build import kconfig

    wanted = kconfig.parse_config((CONFIGS_DIR / "flavor-debug.config").read_text())
    for symbol in ("CONFIG_KASAN", "CONFIG_PROVE_LOCKING", "CONFIG_DEBUG_ATOMIC_SLEEP",
                   "CONFIG_UBSAN"):
        assert wanted[symbol] == "y"


FAKE_MAKE = """\
#!/bin/sh
# make's part in a build, enough for build/kernel.py: the outputs it copies out, and a
# line in $FAKE_MAKE_LOG around the build proper (slow enough for another build to overlap).
for arg; do case "$arg" in O=*) obj=${arg#O=};; esac; done
case "$*" in *bzImage*)
  echo "start $obj" >> "$FAKE_MAKE_LOG"
  sleep 1
  mkdir -p "$obj/arch/x86/boot" "$obj/include/config"
  echo image > "$obj/arch/x86/boot/bzImage"
  echo map > "$obj/System.map"
  echo vmlinux > "$obj/vmlinux"
  echo 6.12.0 > "$obj/include/config/kernel.release"
  echo "end $obj" >> "$FAKE_MAKE_LOG";;
esac
"""
# merge_config.sh -n -O <obj> <fragments>: every symbol as asked, so check_config passes.
FAKE_MERGE = '#!/bin/sh\nobj=$3; shift 3; cat "$@" > "$obj/.config"\n'


def _executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


def _fake_tree(path: Path) -> KernelSource:
    _executable(path / "scripts/kconfig/merge_config.sh", FAKE_MERGE)
    (path / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 12\n")
    return KernelSource(path, KernelVersion(6, 12), "tree:1:same", str(path))


def test_two_copies_of_one_tree_build_their_key_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two clones of one commit (two paths, one key) built at once: one entry, so one build;
    the other waits on the entry and reuses it. Locked per path only, both built it, into
    the one entry."""
    import threading

    _executable(tmp_path / "bin/make", FAKE_MAKE)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_MAKE_LOG", str(tmp_path / "make.log"))
    opts = build.BuildOptions(cache_dir=tmp_path / "cache", use_ccache=False, timeout=60.0)
    sources = [_fake_tree(tmp_path / name) for name in ("clone-a", "clone-b")]
    start = threading.Barrier(2)
    got: dict[Path, KernelBuild | BaseException] = {}

    def one(source: KernelSource) -> None:
        start.wait()
        try:
            got[source.path] = build.ensure_build(source, arches.get("x86_64"),
                                                  variants.get("sysfs"), opts, lambda m: None)
        except BaseException as exc:  # reported below, with the other thread's result
            got[source.path] = exc

    threads = [threading.Thread(target=one, args=(s,)) for s in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert (tmp_path / "make.log").read_text().count("start") == 1
    assert {s.path: getattr(got[s.path], "source_dir", got[s.path]) for s in sources} == \
        {s.path: s.path for s in sources}
