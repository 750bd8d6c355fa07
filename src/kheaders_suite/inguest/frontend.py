"""clang's front end on kernel headers, from files or from memory, inside the guest.

The 2019 review proposed that a consumer decompress kheaders.tar.xz into the compiler's own
memory ("std::map<string, string> with key=path, value=content") instead of extracting it,
and argued both ways about it. This program is that consumer, with libclang (Debian's
python3-clang: the same front end bcc links) and its unsaved files: headers handed to the
parser from memory, at paths that exist on no file system.

    frontend.py parse ARGS.json SRC --root DIR       parse SRC with headers under DIR
    frontend.py parse ARGS.json SRC --archive A.xz   decompress A into memory, parse from it
    frontend.py version                              libclang's version and file
    frontend.py resident CONFIG.json                 headers already in memory vs tmpfs vs a
                                                     shared file system; prints JSON

ARGS.json is clang's argument list with "{root}" where the headers' root goes. ``parse``
exits 1 with the errors on stderr when clang reports any. ``resident`` loads libclang and
decompresses the archive once, then for every round, N and source (SOURCES, or the config's
"headers") forks N children that
each parse every source once: decompression and library loading are out of those samples, so
they compare access to headers already in memory with open/read on tmpfs and over 9p.
stdlib only besides clang.cindex (pure Python, uploaded beside this file when the guest has no
python3-clang: the arm64 root filesystem carries only libclang1).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from typing import Any

MEMORY_ROOT = "/kheaders-in-memory"  # exists on no file system: clang sees only unsaved files
# memory: every member of the archive handed to the parser (what a consumer that decompresses
# the archive must do: it cannot know beforehand which headers a program includes);
# memory-used: only the headers the program turns out to include (found by a parse from
# tmpfs first): the best case for in-memory access, with registering and copying the other
# ~6,500 members taken out; tmpfs and shared: open/read, from tmpfs and over the 9p root.
SOURCES = ("memory", "memory-used", "tmpfs", "shared")
LIBCLANG_GLOBS = ("/usr/lib/*/libclang-*.so.1", "/usr/lib/llvm-*/lib/libclang-*.so.1")


def cindex() -> Any:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import clang.cindex as ci  # type: ignore[import-not-found]

    found = sorted(p for g in LIBCLANG_GLOBS for p in glob.glob(g))
    if not found:
        raise SystemExit("frontend: no libclang-*.so.1 in the guest (install libclang1-NN)")
    if not ci.Config.loaded:
        ci.Config.set_library_file(found[-1])
    return ci


def decompress(archive: str) -> list[tuple[str, bytes]]:
    """Every regular member of ``archive``, in memory, at its path under MEMORY_ROOT."""
    files = []
    with tarfile.open(archive, "r:xz") as tar:
        for member in tar:
            handle = tar.extractfile(member) if member.isfile() else None
            if handle is not None:
                name = member.name[2:] if member.name.startswith("./") else member.name
                files.append((f"{MEMORY_ROOT}/{name}", handle.read()))
    return files


def arguments(template: list[str], root: str) -> list[str]:
    return [a.replace("{root}", root) for a in template]


def parse(ci: Any, src: str, args: list[str],
          unsaved: list[tuple[str, bytes]] | None = None) -> list[str]:
    """Parse ``src`` (front end: preprocessing, parsing, semantic analysis); its errors."""
    index = ci.Index.create()
    unit = index.parse(src, args, unsaved_files=unsaved)
    return [str(d) for d in unit.diagnostics if d.severity >= ci.Diagnostic.Error]


def parse_main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[2] not in ("--root", "--archive"):
        raise SystemExit("usage: frontend.py parse ARGS.json SRC --root DIR|--archive A")
    args_path, src, how, where = argv
    with open(args_path) as handle:
        template = json.load(handle)
    ci = cindex()
    if how == "--root":
        errors = parse(ci, src, arguments(template, where))
    else:
        errors = parse(ci, src, arguments(template, MEMORY_ROOT), decompress(where))
    for error in errors[:20]:
        print(error, file=sys.stderr)
    return 1 if errors else 0


def child(ci: Any, sources: list[str], args: list[str],
          unsaved: list[tuple[str, bytes]] | None) -> None:
    """In a forked child: parse every source; never return."""
    code = 0
    try:
        for src in sources:
            errors = parse(ci, src, args, unsaved)
            if errors:
                sys.stderr.write("\n".join(errors[:5]) + "\n")
                code = 1
    except BaseException as exc:  # anything: the child must exit, not run the parent's loop
        sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
        code = 2
    sys.stderr.flush()
    os._exit(code)


def batch(ci: Any, n: int, sources: list[str], args: list[str],
          unsaved: list[tuple[str, bytes]] | None) -> dict[str, Any]:
    """N forked children at once; wall seconds until the last exits, their rusage."""
    t0 = time.perf_counter()
    pids = []
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            child(ci, sources, args, unsaved)
        pids.append(pid)
    rss, cpu, failed = 0, 0.0, 0
    for _ in pids:
        _pid, status, usage = os.wait4(-1, 0)
        rss = max(rss, usage.ru_maxrss)
        cpu += usage.ru_utime + usage.ru_stime
        failed += os.waitstatus_to_exitcode(status) != 0
    return {"wall": round(time.perf_counter() - t0, 4), "maxrss_kb": rss,
            "cpu_seconds": round(cpu, 4), "failed": failed}


def used_headers(ci: Any, sources: list[str], args: list[str], root: str) -> set[str]:
    """Paths relative to ``root`` of every header the sources include, parsing from it."""
    used = set()
    for src in sources:
        unit = ci.Index.create().parse(src, args)
        for inclusion in unit.get_includes():
            name = str(inclusion.include.name)
            if name.startswith(root + "/"):
                used.add(name[len(root) + 1:])
    return used


def extract(archive: str, dest: str) -> None:
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    subprocess.run(["tar", "-xJf", archive, "-C", dest], check=True)


def resident(cfg: dict[str, Any]) -> dict[str, Any]:
    ci = cindex()
    t0 = time.perf_counter()
    unsaved = decompress(cfg["archive"])
    decompress_seconds = time.perf_counter() - t0
    tmpfs = os.path.join(cfg["workdir"], "resident-tree")
    extract(cfg["archive"], tmpfs)
    roots = {"memory": MEMORY_ROOT, "memory-used": MEMORY_ROOT, "tmpfs": tmpfs,
             "shared": cfg["preinstalled"]}
    used = used_headers(ci, cfg["sources"], arguments(cfg["args"], tmpfs), tmpfs)
    in_memory = {"memory": unsaved,
                 "memory-used": [(p, d) for p, d in unsaved
                                 if p[len(MEMORY_ROOT) + 1:] in used]}
    points: dict[tuple[str, int], dict[str, Any]] = {}
    for r in range(cfg["warmup"] + cfg["reps"]):
        for n in cfg["ns"] if r >= cfg["warmup"] else cfg["warmup_ns"]:
            for where in cfg.get("headers", SOURCES):
                args = arguments(cfg["args"], roots[where])
                result = batch(ci, n, cfg["sources"], args, in_memory.get(where))
                point = points.setdefault((where, n), {"source": where, "n": n, "warmup": [],
                                                       "samples": [], "batches": []})
                point["warmup" if r < cfg["warmup"] else "samples"].append(result["wall"])
                point["batches"].append(result)
    shutil.rmtree(tmpfs, ignore_errors=True)
    return {"decompress_seconds": round(decompress_seconds, 4), "files": len(unsaved),
            "bytes": sum(len(data) for _, data in unsaved), "roots": roots,
            "used_files": len(in_memory["memory-used"]),
            "used_bytes": sum(len(data) for _, data in in_memory["memory-used"]),
            "points": list(points.values()),
            "failures": sum(b["failed"] for p in points.values() for b in p["batches"])}


def version() -> str:
    ci = cindex()
    getter = ci.conf.lib.clang_getClangVersion
    getter.restype = ci._CXString
    getter.errcheck = ci._CXString.from_result
    return f"libclang: {getter()} ({ci.conf.get_filename()})"


def main(argv: list[str]) -> int:
    if argv == ["version"]:
        print(version())
        return 0
    if argv[:1] == ["parse"]:
        return parse_main(argv[1:])
    if argv[:1] == ["resident"] and len(argv) == 2:
        with open(argv[1]) as handle:
            json.dump(resident(json.load(handle)), sys.stdout)
        sys.stdout.write("\n")
        return 0
    raise SystemExit("usage: frontend.py parse ARGS.json SRC --root DIR|--archive A; "
                     "frontend.py resident CONFIG.json")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
