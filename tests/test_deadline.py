from kheaders_suite.host.deadline import Deadline, poll


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_remaining_counts_down_and_never_goes_negative() -> None:
    clock = FakeClock()
    deadline = Deadline(10.0, clock=clock)
    clock.now += 4
    assert deadline.remaining == 6.0
    assert not deadline.expired
    clock.now += 20
    assert deadline.remaining == 0.0
    assert deadline.expired
    assert deadline.elapsed == 24.0


def test_poll_returns_first_value_or_none_at_deadline() -> None:
    answers = iter([None, None, "up"])
    assert poll(lambda: next(answers), Deadline(5.0), 0.001) == "up"
    assert poll(lambda: None, Deadline(0.01), 0.001) is None
