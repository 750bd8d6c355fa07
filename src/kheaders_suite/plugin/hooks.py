"""The run's hooks: options and settings, the targets tests are parametrized with and the
order they run in, the terminal summary, and the results file (merged across xdist workers).

Test ids carry "<arch>-<variant>", so `pytest vmtests -k proc` selects the proc variant and
`-k "arm64 and module"` one arch of one variant. Tests of one target share one xdist group,
so a worker boots each kernel once.
"""

from __future__ import annotations

import platform
from typing import Any

import pytest

from kheaders_suite.boot import accel
from kheaders_suite.catalog import arches, variants
from kheaders_suite.errors import UserError
from kheaders_suite.plugin import options
from kheaders_suite.plugin.context import RECORDER, SETTINGS, progress, target_of
from kheaders_suite.plugin.outcomes import OUTCOMES
from kheaders_suite.records import Target
from kheaders_suite.report.recorder import WORKER_KEY, Recorder
from kheaders_suite.report.results import (
    BccRecord,
    CheckRecord,
    RunMeta,
    TamperRecord,
    TimingRecord,
    encode,
)


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    try:
        config.stash[SETTINGS] = options.from_config(config)
    except UserError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[RECORDER] = Recorder()


def pytest_report_header(config: pytest.Config) -> list[str]:
    s = config.stash[SETTINGS]
    source = str(s.kernel_src) if s.kernel_src else f"{s.kernel_package} (embedded default)"
    lines = [f"kheaders-suite: kernel source {source}; flavor {s.flavor}; cache {s.cache_dir}"]
    for name in s.arches:
        decision = accel.detect(s.accel, arches.get(name), s.cache_dir)
        lines.append(f"kheaders-suite: {name} guests: {decision.name} ({decision.reason})")
    return lines


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "target" not in metafunc.fixturenames:
        return
    s = metafunc.config.stash[SETTINGS]
    marker = metafunc.definition.get_closest_marker("variants")
    wanted = marker.args if marker else variants.names()
    unknown = sorted(set(wanted) - set(variants.names()))
    if unknown:  # a misspelt name would otherwise parametrize nothing, silently
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: @pytest.mark.variants names "
                                f"{', '.join(unknown)}; variants are {', '.join(variants.names())}")
    params = [
        pytest.param(Target(a, v), id=f"{a}-{v}",
                     marks=pytest.mark.xdist_group(xdist_group(s.arches, a, v)))
        for a in s.arches for v in variants.names() if v in wanted
    ]
    metafunc.parametrize("target", params, indirect=True, scope="session")


TIMING_NOT_ASKED = ("a compile-timing measurement, not a check: select it with -m timing "
                    "(or --sweep reduced|full)")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """All tests of one target together, targets in arch then variant order: pytest's own
    reordering heuristic split them (sysfs, module, sysfs again), and every split is one
    more boot. The sort is stable, so each target keeps its tests' collected order. The
    timing sweeps skip unless asked for (options.timing_asked)."""
    if SETTINGS in config.stash and not config.stash[SETTINGS].timing:
        for item in items:
            if item.get_closest_marker("timing") is not None:
                item.add_marker(pytest.mark.skip(reason=TIMING_NOT_ASKED))
    order = {name: i for i, name in enumerate(variants.names())}

    def key(item: pytest.Item) -> tuple[int, str, int]:
        t = target_of(item)
        if t is None:
            return (0, "", 0)  # tests without a VM first: they fail fast and cost little
        return (1, t.arch, order.get(t.variant, len(order)))

    items.sort(key=key)


def xdist_group(all_arches: tuple[str, ...], arch: str, variant: str) -> str:
    """One worker per arch when several run: its variants share one object tree (and one
    build lock), so spreading them over workers would only queue them; with one arch,
    spread the variants so their boots and tests overlap."""
    return arch if len(all_arches) > 1 else f"{arch}-{variant}"


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int,
                            config: pytest.Config) -> None:
    """One line per archive check and target; the timing table when timings were taken."""
    rec = config.stash[RECORDER]
    checks = rec.of_kind(CheckRecord)
    if checks:
        terminalreporter.section("kheaders: archive vs build")
        for c in sorted(checks, key=lambda c: (c.target, c.check)):
            mark = "ok  " if c.ok else "FAIL"
            terminalreporter.write_line(f"{mark} {c.target:16} {c.check:12} {c.summary}")
    # The timing table is timing.summary's: it reads the records as results.json has them.
    timings = [encode(r) for r in [*rec.of_kind(TimingRecord), *rec.of_kind(BccRecord)]]
    if timings:
        from kheaders_suite.timing.summary import summary_lines

        terminalreporter.section("kheaders: compile timing in the guest")
        for line in summary_lines(timings):
            terminalreporter.write_line(line)
    for t in rec.of_kind(TamperRecord):
        terminalreporter.write_line(f"kheaders: tamper catalogue caught {t.caught}/{t.total}")
    counts = config.stash[OUTCOMES].summary()
    if counts:
        terminalreporter.write_line(counts)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """A keyword that selected nothing says what ids look like; the records go to the
    controller (an xdist worker) or into results.json."""
    config = session.config
    controller = getattr(config, "workerinput", None) is None
    if controller and session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED \
            and config.option.keyword:
        progress(config, f"-k {config.option.keyword!r} selected no test: ids are "
                         f"<arch>-<variant>, arches {', '.join(arches.names())}, variants "
                         f"{', '.join(variants.names())} (e.g. -k 'x86_64 and proc')")
    rec = config.stash[RECORDER]
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[WORKER_KEY] = rec.to_json()
        return
    if rec.records:
        s = config.stash[SETTINGS]
        rec.write(s.results_dir / "results.json",
                  RunMeta(host=platform.node(), arches=s.arches, accel_option=s.accel))


def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: merge a worker's records."""
    text = getattr(node, "workeroutput", {}).get(WORKER_KEY)
    if text:
        node.config.stash[RECORDER].merge_json(text)
