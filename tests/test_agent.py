"""The in-guest agent's request handling, run here on the host (same stdlib Python)."""

import base64
import json
import subprocess
import sys

from kheaders_suite.guest_scripts import agent, source


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
        (sys.executable, "-c", source("agent.py").decode()),
        input=json.dumps({"id": 9, "argv": ["/nonexistent"], "timeout": 5}) + "\n",
        capture_output=True, text=True, timeout=30,
    )
    ready, reply = (json.loads(line) for line in proc.stdout.splitlines())
    assert "ready" in ready
    assert reply["id"] == 9
    assert reply["rc"] == 127
