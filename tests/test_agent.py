"""The in-guest agent's request handling, run here on the host (same stdlib Python)."""

import base64
import errno
import json
import subprocess
import sys
from pathlib import Path

from kheaders_suite.inguest import agent, source


def test_runs_argv_and_returns_both_streams() -> None:
    reply = agent.run({"id": 1, "argv": ["sh", "-c", "echo out; echo err >&2; exit 3"],
                       "timeout": 10})
    assert reply["rc"] == 3
    assert base64.b64decode(reply["stdout"]) == b"out\n"
    assert base64.b64decode(reply["stderr"]) == b"err\n"
    assert not reply["timed_out"]


def test_stdin_is_passed() -> None:
    reply = agent.run({"id": 2, "argv": ["cat"], "timeout": 10,
                       "stdin": base64.b64encode(b"data").decode()})
    assert base64.b64decode(reply["stdout"]) == b"data"


def test_timeout_kills_the_whole_group() -> None:
    reply = agent.run({"id": 3, "argv": ["sh", "-c", "sleep 30 & sleep 30"], "timeout": 0.3})
    assert reply["timed_out"]
    assert reply["rc"] == -9
    assert reply["duration"] < 5


def test_protocol_over_pipes_with_missing_command() -> None:
    proc = subprocess.run(
        (sys.executable, "-S", "-u", "-c", source("agent.py").decode()),  # as the guest runs it
        input=json.dumps({"id": 9, "argv": ["/nonexistent"], "timeout": 5}) + "\n",
        capture_output=True, text=True, timeout=30,
    )
    ready, reply = (json.loads(line) for line in proc.stdout.splitlines())
    assert "ready" in ready
    assert reply["id"] == 9
    assert reply["rc"] == 127


def test_file_ops_read_write_and_report_errno(tmp_path: Path) -> None:
    target = tmp_path / "script.py"
    data = bytes(range(256)) * 100
    wrote = agent.handle({"id": 1, "op": "write", "path": str(target), "mode": 0o755,
                          "data": base64.b64encode(data).decode()})
    assert wrote["rc"] == 0
    assert target.read_bytes() == data
    assert target.stat().st_mode & 0o777 == 0o755
    read = agent.handle({"id": 2, "op": "read", "path": str(target)})
    assert base64.b64decode(read["stdout"]) == data
    missing = agent.handle({"id": 3, "op": "read", "path": str(tmp_path / "nope")})
    assert missing["rc"] == errno.ENOENT
    assert b"No such file" in base64.b64decode(missing["stderr"])


def test_a_command_still_runs_by_default() -> None:
    assert agent.handle({"id": 4, "argv": ["true"], "timeout": 10})["rc"] == 0
    assert agent.handle({"id": 5, "argv": ["/nonexistent"], "timeout": 10})["rc"] == 127


def test_agent_command_is_clean_of_the_host_users_environment() -> None:
    from kheaders_suite.session.agentlink import agent_command

    cmd = agent_command(b"print(1)")
    assert cmd[:2] == ("env", "-i")
    assert "PATH=/usr/sbin:/usr/bin:/sbin:/bin" in cmd
    assert cmd[-5:] == ("/usr/bin/python3", "-S", "-u", "-c", "print(1)")
    out = subprocess.run((*cmd[:-2], "-c", "import os; print(sorted(os.environ))"),
                         capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout.strip() == "['HOME', 'LC_ALL', 'PATH']"
