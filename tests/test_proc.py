"""The one way host commands run (proc.py): output into a log or captured, the caller's error
with the log's tail on failure, and nothing of the command's process group left behind."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kheaders_suite.errors import InfraError
from kheaders_suite.host import proc


class StepFailed(InfraError):
    """A caller's own error family (build.py raises BuildFailed, the others InfraError)."""


def running(pid: str) -> bool:
    """Whether ``pid`` runs (a zombie waiting for init to reap it does not)."""
    stat = Path(f"/proc/{pid}/stat")
    for _ in range(20):
        if not stat.exists() or stat.read_text().split(") ")[1][0] == "Z":
            return False
        time.sleep(0.05)
    return True


def test_a_logged_command_appends_after_its_command_line(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text("# earlier\n")
    output = proc.run_logged(("sh", "-c", "echo out; echo err >&2"), log, what="step",
                             error=StepFailed, timeout=30.0)
    assert output.read() == b"out\nerr\n"
    assert log.read_text() == "# earlier\n\n$ sh -c echo out; echo err >&2\nout\nerr\n"


def test_a_failed_command_raises_the_callers_error_with_the_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "log"
    script = "for i in $(seq 1 30); do echo line $i; done; exit 3"
    with pytest.raises(StepFailed) as info:
        proc.run_logged(("sh", "-c", script), log, what="x86_64-proc: make", error=StepFailed,
                        timeout=30.0, tail_lines=5)
    head, tail = str(info.value).split("\n", 1)
    assert head == f"x86_64-proc: make failed (exit 3); full log {log}"
    assert tail == "\n".join(f"line {i}" for i in range(26, 31))


def test_progress_ticks_see_the_output_so_far(tmp_path: Path) -> None:
    seen: list[tuple[bytes, float]] = []
    proc.run_logged(("sh", "-c", "echo '  CC      a.o'; sleep 0.7"), tmp_path / "log",
                    what="make", error=StepFailed, timeout=30.0,
                    tick=lambda out, elapsed: seen.append((out.read(), elapsed)), every=0.2)
    assert len(seen) >= 2
    assert all(out == b"  CC      a.o\n" for out, _ in seen[1:])
    assert [elapsed for _, elapsed in seen] == sorted(elapsed for _, elapsed in seen)


def group_script(pidfile: Path) -> tuple[str, ...]:
    """A command whose child (the real work, like make's compilers) outlives a plain kill."""
    return ("sh", "-c", 'sleep 60 & echo $! > "$0"; wait', str(pidfile))


def started_child(pidfile: Path) -> str:
    """The pid group_script's child wrote, once it is there (10 s at the most)."""
    for _ in range(100):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        time.sleep(0.1)
    return pidfile.read_text().strip()


def interrupt_when_started(pidfile: Path) -> proc.Tick:
    def tick(output: proc.Output, elapsed: float) -> None:
        if pidfile.exists() and pidfile.read_text().strip():
            raise KeyboardInterrupt

    return tick


@pytest.mark.parametrize("how", ["timeout", "interrupt", "captured timeout"])
def test_no_process_of_the_group_outlives_the_command(tmp_path: Path, how: str) -> None:
    pidfile, log = tmp_path / "child.pid", tmp_path / "log"
    runs: dict[str, Callable[[], object]] = {
        "timeout": lambda: proc.run_logged(group_script(pidfile), log, what="make",
                                           error=StepFailed, timeout=1.0),
        "interrupt": lambda: proc.run_logged(group_script(pidfile), log, what="make",
                                             error=StepFailed, timeout=30.0, every=0.1,
                                             tick=interrupt_when_started(pidfile)),
        "captured timeout": lambda: proc.run_captured(group_script(pidfile), what="rsync",
                                                      error=StepFailed, timeout=1.0),
    }
    expected: type[BaseException] = KeyboardInterrupt if how == "interrupt" else StepFailed
    with pytest.raises(expected, match="exceeded 1s" if expected is StepFailed else None):
        runs[how]()
    assert not running(pidfile.read_text().strip())


def test_a_captured_command_gives_its_stdout(tmp_path: Path) -> None:
    assert proc.run_captured(("sh", "-c", "echo out; echo err >&2"), what="tar",
                             error=StepFailed, cwd=tmp_path) == "out\n"


def test_a_failed_captured_command_quotes_the_end_of_its_stderr() -> None:
    script = "printf 'x%.0s' $(seq 1 1000) >&2; printf END >&2; exit 2"
    with pytest.raises(StepFailed) as info:
        proc.run_captured(("sh", "-c", script), what="applying 0001.patch", error=StepFailed)
    message = str(info.value)
    assert message.startswith("applying 0001.patch failed (sh exit 2): xxx")
    assert message.endswith("xEND")
    assert len(message.split(": ", 1)[1]) == proc.STDERR_TAIL


def test_a_killed_runner_leaves_no_compiler_behind(tmp_path: Path) -> None:
    """An xdist worker killed mid-build (SIGKILL: no finally runs): the guardian, tied to the
    runner by a parent-death signal, kills the command's whole group."""
    pidfile, log = tmp_path / "child.pid", tmp_path / "log"
    runner = subprocess.Popen((sys.executable, "-c", (
        "import sys; from pathlib import Path; from kheaders_suite.host import proc; "
        "from kheaders_suite.errors import InfraError; "
        f"proc.run_logged({group_script(pidfile)!r}, Path({str(log)!r}), what='make', "
        "error=InfraError, timeout=60.0)")))
    child = started_child(pidfile)
    time.sleep(0.5)  # the guardian has started (setpriv execs it before the runner waits)
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait()
    deadline = time.monotonic() + 10
    while running(child) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not running(child), "the build's child outlived its killed runner"


def test_a_full_disk_is_named_as_such(tmp_path: Path) -> None:
    with pytest.raises(StepFailed, match=r"the disk is full \(\d+ MiB free"):
        proc.run_logged(("sh", "-c", "echo 'ld: final link failed: No space left on device';"
                         " exit 1"), tmp_path / "log", what="make", error=StepFailed,
                        timeout=10.0)


def test_the_full_disk_named_is_the_fullest_place_the_command_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The object tree may be on a file system of its own: the line names the one that
    filled, not the log's (which had 38 GiB free when a real build's object tree filled)."""
    obj = tmp_path / "obj"
    obj.mkdir()
    real = shutil.disk_usage

    def usage(path: str | Path) -> Any:
        free = 0 if Path(path) == obj else 40 << 30
        return real(path)._replace(free=free)

    monkeypatch.setattr(shutil, "disk_usage", usage)
    tail = "core.c:1109:1: fatal error: closing dependency file .core.o.d: No space left on device"
    assert proc.disk_full_hint(tail, (tmp_path, obj, tmp_path / "gone")) == (
        f"\nthe disk is full (0 MiB free on the file system of {obj}): free space and run "
        "again; nothing of this build was cached")
    assert proc.disk_full_hint("make: *** Error 2", (tmp_path, obj)) == ""


def test_a_full_disk_is_named_when_other_jobs_wrote_the_last_lines(tmp_path: Path) -> None:
    """make -j: the compiler that hit ENOSPC is often not in the tail the error shows."""
    script = ("echo 'cc1: fatal error: closing dependency file .x.o.d: No space left on device';"
              " for i in $(seq 40); do echo \"make[$i]: *** Error 2\"; done; exit 2")
    with pytest.raises(StepFailed, match=r"the disk is full \(\d+ MiB free") as failed:
        proc.run_logged(("sh", "-c", script), tmp_path / "log", what="make", error=StepFailed,
                        timeout=10.0, tail_lines=25)
    assert "closing dependency file" not in str(failed.value)


def test_ending_a_group_kills_its_children_and_reaps_a_text_mode_command(tmp_path: Path) -> None:
    """end_group serves the byte-mode commands here and patchci's text-mode pytest alike."""
    pidfile = tmp_path / "child.pid"
    with subprocess.Popen(group_script(pidfile), stdout=subprocess.PIPE, text=True,
                          start_new_session=True) as child:
        grandchild = started_child(pidfile)
        proc.end_group(child)
    assert child.returncode == -signal.SIGKILL
    assert not running(grandchild)
