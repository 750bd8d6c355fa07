"""plugin.faults without a VM: the spec, and the decision to kill QEMU exactly once per
state file (the kill itself is vmtests' and patch CI's end-to-end business)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kheaders_suite import plugin
from kheaders_suite.errors import UserError
from kheaders_suite.patchci import cli
from kheaders_suite.plugin import faults
from kheaders_suite.plugin.faults import Fault


def test_the_spec_names_the_kind_and_its_state_file(tmp_path: Path) -> None:
    assert faults.parse_fault("") is None
    assert faults.parse_fault(f"kill-qemu-once:{tmp_path}/s") == Fault("kill-qemu-once",
                                                                      tmp_path / "s")
    assert faults.fault_from({"KHEADERS_SUITE_FAULT": f"kill-qemu-once:{tmp_path}/s"}) == \
        Fault("kill-qemu-once", tmp_path / "s")
    assert faults.fault_from({}) is None


@pytest.mark.parametrize("spec", ["kill-qemu", "kill-qemu-once", "kill-qemu-once:",
                                  "panic-once:/tmp/s"])
def test_an_unknown_spec_is_bad_input(spec: str) -> None:
    with pytest.raises(UserError, match=r"^KHEADERS_SUITE_FAULT=.*: expected "
                                        r"kill-qemu-once:STATE_FILE$"):
        faults.parse_fault(spec)


def test_the_fault_is_injected_once_per_state_file(tmp_path: Path) -> None:
    fault = Fault("kill-qemu-once", tmp_path / "state")
    assert not faults.should_inject(None, has_guest=True)
    assert not faults.should_inject(fault, has_guest=False)  # a host-side test: wait
    assert not fault.state.exists()
    assert faults.should_inject(fault, has_guest=True)  # the first VM test body
    assert fault.state.exists()
    assert not faults.should_inject(fault, has_guest=True)  # the next, and the retry's run
    assert not faults.should_inject(Fault("kill-qemu-once", tmp_path / "state"), True)
    assert faults.should_inject(Fault("kill-qemu-once", tmp_path / "other"), True)


def test_the_plugin_loads_the_hook() -> None:
    assert "kheaders_suite.plugin.faults" in plugin.pytest_plugins


def test_kheaders_ci_refuses_a_bad_fault_before_building(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    status = cli.main(["--tree", str(tmp_path), "--range", "a..b",
                       "--patched-fault", "kill-qemu"])
    assert status == cli.BAD_INPUT
    assert capsys.readouterr().err == ("kheaders-ci: KHEADERS_SUITE_FAULT='kill-qemu': expected "
                                       "kill-qemu-once:STATE_FILE\n")
