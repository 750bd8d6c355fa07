"""The rule test_rmmod_while_a_reader_holds_it_open judges the guest's report by (#10: it used
to accept both strings the guest script can print, a read of freed data included)."""

import errno

import pytest

from vmtests.test_kheaders_ko import holdopen_problems

GOOD = {"first_read": 4096, "rmmod_rc": 0, "present": False, "after": f"errno {errno.ENODEV}"}


def test_what_the_kernel_must_do_passes() -> None:
    assert holdopen_problems(GOOD) == []


@pytest.mark.parametrize(("change", "problem"), [
    ({"after": "read 4096"}, "not errno 19"),  # data read after the module went away
    ({"after": f"errno {errno.EIO}"}, "not errno 19"),
    ({"rmmod_rc": 1, "present": True}, "rmmod refused"),
    ({"present": True}, "still there after rmmod"),
    ({"first_read": 0}, "returned no data"),
])
def test_every_other_outcome_is_named(change: dict[str, object], problem: str) -> None:
    problems = holdopen_problems({**GOOD, **change})
    assert any(problem in p for p in problems), problems
