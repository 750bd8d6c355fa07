"""What the plugin keeps for the run, on the config's stash (never in module globals, so
two runs in one process, as pytester makes them, share nothing); its progress lines; the
target a test runs on."""

from __future__ import annotations

import os
from typing import Any

import pytest

from kheaders_suite.plugin.options import Settings
from kheaders_suite.records import Target
from kheaders_suite.report.recorder import Recorder

SETTINGS = pytest.StashKey[Settings]()
RECORDER = pytest.StashKey[Recorder]()


def progress(config: pytest.Config, message: str) -> None:
    """Print past pytest's capture: builds and boots take minutes and should say so."""
    capman: Any = config.pluginmanager.getplugin("capturemanager")
    line = f"[kheaders] {message}"
    if capman is not None:
        with capman.global_and_fixture_disabled():
            os.write(2, (line + "\n").encode())
    else:
        os.write(2, (line + "\n").encode())


def target_of(item: pytest.Item) -> Target | None:
    """The target ``item`` is parametrized with, if any."""
    callspec = getattr(item, "callspec", None)
    t = callspec.params.get("target") if callspec is not None else None
    return t if isinstance(t, Target) else None
