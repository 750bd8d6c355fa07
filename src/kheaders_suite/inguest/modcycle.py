"""Load and unload kheaders.ko in a loop while readers hammer the file; print JSON.

Run in the guest: python3 modcycle.py MODROOT CYCLES READERS PATH SHA256. SHA256 is the
build's own archive (the host knows it), so every read is judged against what the kernel
was built with, not against what this guest happened to serve first. Readers open the
archive and read it whole as fast as they can. A read may fail cleanly while the module is
away: open() with ENOENT (the file is gone), or a read() through a descriptor opened while
the module was loaded with ENODEV (kernfs drained the node: fs/kernfs/file.c); it must never
return bytes other than the archive's.

Whether the race was exercised is counted, not assumed: a read is "raced" when its file was
open while an rmmod ran, i.e. some rmmod had not finished when open() returned and had
started before the read ended. Rmmods run one at a time, so with ``started`` and ``finished``
counting them, that is ``started(at the end) > finished(at open)``.
"""

import errno
import hashlib
import json
import os
import subprocess
import sys
import threading
from typing import Any

CLEAN_OPEN = {errno.ENOENT}
CLEAN_READ = {errno.ENODEV, errno.EIO}
CHUNK = 1 << 20


class Unloads:
    """How many rmmods have started and finished (a reader compares them around a read)."""

    def __init__(self) -> None:
        self.started = 0
        self.finished = 0


def modprobe(modroot: str, *args: str) -> int:
    return subprocess.run(("modprobe", "-d", modroot, *args), capture_output=True).returncode


def read_whole(fd: int) -> bytes:
    parts: list[bytes] = []
    while True:
        part = os.read(fd, CHUNK)
        if not part:
            return b"".join(parts)
        parts.append(part)


def count(stats: dict[str, int], key: str) -> None:
    stats[key] = stats.get(key, 0) + 1


def read_once(path: str, good: str, unloads: Unloads, stats: dict[str, int]) -> None:
    """One open + read to EOF, counted by outcome and by whether an rmmod overlapped it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        count(stats, "open_errors" if exc.errno in CLEAN_OPEN else "bad_errors")
        return
    unfinished_at_open = unloads.finished
    try:
        digest = hashlib.sha256(read_whole(fd)).hexdigest()
        outcome = "full_reads" if digest == good else "short_or_wrong"
    except OSError as exc:
        outcome = "read_errors" if exc.errno in CLEAN_READ else "bad_errors"
    finally:
        os.close(fd)
    count(stats, outcome)
    if unloads.started > unfinished_at_open:
        count(stats, "raced")
        count(stats, f"raced_{outcome}")


def reader(path: str, good: str, unloads: Unloads, stop: threading.Event,
           stats: dict[str, int]) -> None:
    while not stop.is_set():
        read_once(path, good, unloads, stats)


def cycle(modroot: str, cycles: int, unloads: Unloads) -> list[str]:
    failures = []
    for i in range(cycles):
        unloads.started += 1
        rc = modprobe(modroot, "-r", "kheaders")
        unloads.finished += 1
        if rc != 0:
            failures.append(f"cycle {i}: rmmod failed")
        if modprobe(modroot, "kheaders") != 0:
            failures.append(f"cycle {i}: modprobe failed")
    return failures


def main(modroot: str, cycles: int, readers: int, path: str, good: str) -> None:
    if modprobe(modroot, "kheaders") != 0:
        raise SystemExit("first modprobe failed")
    unloads, stop = Unloads(), threading.Event()
    stats: list[dict[str, int]] = [{} for _ in range(readers)]
    threads = [threading.Thread(target=reader, args=(path, good, unloads, stop, s))
               for s in stats]
    for t in threads:
        t.start()
    failures = cycle(modroot, cycles, unloads)
    stop.set()
    for t in threads:
        t.join()
    unload = modprobe(modroot, "-r", "kheaders")
    merged: dict[str, Any] = {}
    for s in stats:
        for k, v in s.items():
            merged[k] = merged.get(k, 0) + v
    print(json.dumps({"failures": failures, "reads": merged, "final_unload_rc": unload,
                      "present_after_unload": os.path.exists(path)}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
