"""Runs commands for the host over one long-lived SSH channel: a JSON request per line in,
a JSON reply per line out.

Why: under TCG every new SSH exec channel costs ~3 s in the guest (sshd forks, a PAM session,
a login shell, all over 9p); the command itself is usually milliseconds. One channel, one
Python process, and each command is just a fork/exec.

Request:  {"id": 7, "argv": ["uname", "-r"], "stdin": "<base64>" | null, "timeout": 60.0}
Reply:    {"id": 7, "rc": 0, "stdout": "<base64>", "stderr": "<base64>", "duration": 0.01,
           "timed_out": false}
A command that outlives its timeout is killed (with its process group) and reported with
rc -9 and timed_out true. stdout and stderr are collected together by communicate().

Files move over the same channel, so no test pays for an SFTP channel:
    {"id": 8, "op": "read", "path": "/sys/kernel/btf/vmlinux"}  -> the bytes in "stdout"
    {"id": 9, "op": "write", "path": "/tmp/x.py", "data": "<base64>", "mode": 420}
A file operation that fails replies rc = errno and the error's text in "stderr".

The kernel log, read where the last request left off (one /dev/kmsg descriptor, opened at the
first request, so the first answer holds the boot log):
    {"id": 10, "op": "kmsg"}  -> the raw records ("pri,seq,usec,flags;text") in "stdout"
Records the ring buffer overwrote before they were read show as a gap in the sequence numbers.
"""

import base64
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any


def run(request: dict[str, Any]) -> dict[str, Any]:
    data = base64.b64decode(request["stdin"]) if request.get("stdin") else None
    start = time.monotonic()
    proc = subprocess.Popen(request["argv"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    timed_out = False
    try:
        out, err = proc.communicate(data, timeout=request.get("timeout"))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        timed_out = True
    return {"id": request["id"], "rc": -9 if timed_out else proc.returncode,
            "stdout": base64.b64encode(out).decode(), "stderr": base64.b64encode(err).decode(),
            "duration": time.monotonic() - start, "timed_out": timed_out}


def read_file(request: dict[str, Any]) -> dict[str, Any]:
    with open(request["path"], "rb") as handle:
        return {"stdout": base64.b64encode(handle.read()).decode()}


def write_file(request: dict[str, Any]) -> dict[str, Any]:
    data = base64.b64decode(request["data"])
    fd = os.open(request["path"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, request["mode"])
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fchmod(fd, request["mode"])
    finally:
        os.close(fd)
    return {}


KMSG: dict[str, Any] = {"fd": -1, "path": "/dev/kmsg"}


def read_kmsg(request: dict[str, Any]) -> dict[str, Any]:
    if KMSG["fd"] < 0:
        KMSG["fd"] = os.open(KMSG["path"], os.O_RDONLY | os.O_NONBLOCK)
    records = []
    while True:
        try:
            record = os.read(KMSG["fd"], 16384)  # one record per read
        except BlockingIOError:
            break
        except BrokenPipeError:
            continue  # overwritten under us: the next read resumes at the oldest record
        if not record:
            break
        records.append(record)
    return {"stdout": base64.b64encode(b"".join(records)).decode()}


FILE_OPS = {"read": read_file, "write": write_file, "kmsg": read_kmsg}


def file_op(request: dict[str, Any]) -> dict[str, Any]:
    start = time.monotonic()
    reply = {"id": request["id"], "rc": 0, "stdout": "", "stderr": "", "timed_out": False}
    try:
        reply.update(FILE_OPS[request["op"]](request))
    except OSError as exc:
        reply.update(rc=exc.errno or 1, stderr=base64.b64encode(str(exc).encode()).decode())
    reply["duration"] = time.monotonic() - start
    return reply


def handle(request: dict[str, Any]) -> dict[str, Any]:
    if request.get("op", "run") != "run":
        return file_op(request)
    try:
        return run(request)
    except OSError as exc:  # command not found, not executable: rc 127 like a shell
        return {"id": request["id"], "rc": 127, "stdout": "",
                "stderr": base64.b64encode(str(exc).encode()).decode(),
                "duration": 0.0, "timed_out": False}


def main() -> None:
    sys.stdout.write(json.dumps({"ready": os.getpid()}) + "\n")
    sys.stdout.flush()
    for line in sys.stdin:
        sys.stdout.write(json.dumps(handle(json.loads(line))) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
