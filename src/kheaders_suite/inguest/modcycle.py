"""Load and unload kheaders.ko in a loop while readers hammer the file; print JSON.

Run in the guest: python3 modcycle.py MODROOT CYCLES READERS PATH. Readers open and read the
archive whole as fast as they can; a read may fail cleanly (ENOENT, ENODEV) while the module
is away, but must never return bytes other than the archive's. Reports the counts and every
unexpected outcome.
"""

import errno
import hashlib
import json
import os
import subprocess
import sys
import threading
from typing import Any

CLEAN_ERRORS = {errno.ENOENT, errno.ENODEV, errno.EIO}


def modprobe(modroot: str, *args: str) -> int:
    return subprocess.run(("modprobe", "-d", modroot, *args), capture_output=True).returncode


def reader(path: str, good: str, stop: threading.Event, stats: dict[str, Any]) -> None:
    while not stop.is_set():
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            key = "clean_errors" if exc.errno in CLEAN_ERRORS else "bad_errors"
            stats[key] = stats.get(key, 0) + 1
            continue
        ok = hashlib.sha256(data).hexdigest() == good
        stats["full_reads" if ok else "short_or_wrong"] = (
            stats.get("full_reads" if ok else "short_or_wrong", 0) + 1)


def main(modroot: str, cycles: int, readers: int, path: str) -> None:
    if modprobe(modroot, "kheaders") != 0:
        raise SystemExit("first modprobe failed")
    with open(path, "rb") as handle:
        good = hashlib.sha256(handle.read()).hexdigest()
    stop = threading.Event()
    stats: list[dict[str, Any]] = [{} for _ in range(readers)]
    threads = [threading.Thread(target=reader, args=(path, good, stop, s)) for s in stats]
    for t in threads:
        t.start()
    failures = []
    for i in range(cycles):
        if modprobe(modroot, "-r", "kheaders") != 0:
            failures.append(f"cycle {i}: rmmod failed")
        if modprobe(modroot, "kheaders") != 0:
            failures.append(f"cycle {i}: modprobe failed")
    stop.set()
    for t in threads:
        t.join()
    unload = modprobe(modroot, "-r", "kheaders")
    merged: dict[str, int] = {}
    for s in stats:
        for k, v in s.items():
            merged[k] = merged.get(k, 0) + v
    print(json.dumps({"failures": failures, "reads": merged, "final_unload_rc": unload,
                      "present_after_unload": os.path.exists(path)}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
