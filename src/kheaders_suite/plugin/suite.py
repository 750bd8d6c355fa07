"""The pytest face of the pipeline: options, the session-scoped fixture chain, reporting.

    target (arch, variant) -> kernel_build -> guest -> kheaders (archive made present)

Test ids carry "<arch>-<variant>", so `pytest vmtests -k proc` selects the proc variant and
`-k "arm64 and module"` one arch of one variant. Tests of one target share one xdist group,
so a worker boots each kernel once.
"""

from __future__ import annotations

import os
import platform
import threading
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from kheaders_suite.boot import accel, console
from kheaders_suite.boot.vm import shell_command
from kheaders_suite.build.kernel import BuildOptions, ensure_build
from kheaders_suite.catalog import arches, variants
from kheaders_suite.catalog.arches.arch import Arch
from kheaders_suite.catalog.variants import Variant
from kheaders_suite.errors import GuestTimeout, UserError
from kheaders_suite.plugin import options as settings
from kheaders_suite.records import KernelBuild, Target
from kheaders_suite.report import verdict
from kheaders_suite.report.recorder import WORKER_KEY, Recorder
from kheaders_suite.session import steps
from kheaders_suite.session.guest import Guest
from kheaders_suite.session.kernellog import KernelReported
from kheaders_suite.source.tree import KernelSource, embedded_source, user_source

SETTINGS = pytest.StashKey[settings.Settings]()
RECORDER = pytest.StashKey[Recorder]()
OUTCOMES = pytest.StashKey["OutcomeCounter"]()
KERNEL_REPORTED = pytest.StashKey[bool]()  # on an item: its body's failure is a kernel report
KERNEL_ATTR = "kheaders_kernel"  # on a set-up/teardown report: the kernel reported there


def pytest_addoption(parser: pytest.Parser) -> None:
    settings.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    try:
        config.stash[SETTINGS] = settings.from_config(config)
    except UserError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[RECORDER] = Recorder()
    config.stash[OUTCOMES] = OutcomeCounter(config)
    config.pluginmanager.register(config.stash[OUTCOMES], "kheaders-outcomes")


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


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """All tests of one target together, targets in arch then variant order: pytest's own
    reordering heuristic split them (sysfs, module, sysfs again), and every split is one
    more boot. The sort is stable, so each target keeps its tests' collected order."""
    order = {name: i for i, name in enumerate(variants.names())}

    def key(item: pytest.Item) -> tuple[int, str, int]:
        callspec = getattr(item, "callspec", None)
        t = callspec.params.get("target") if callspec is not None else None
        if not isinstance(t, Target):
            return (0, "", 0)  # tests without a VM first: they fail fast and cost little
        return (1, t.arch, order.get(t.variant, len(order)))

    items.sort(key=key)


def xdist_group(all_arches: tuple[str, ...], arch: str, variant: str) -> str:
    """One worker per arch when several run: its variants share one object tree (and one
    build lock), so spreading them over workers would only queue them; with one arch,
    spread the variants so their boots and tests overlap."""
    return arch if len(all_arches) > 1 else f"{arch}-{variant}"


def progress(config: pytest.Config, message: str) -> None:
    """Print past pytest's capture: builds and boots take minutes and should say so."""
    capman: Any = config.pluginmanager.getplugin("capturemanager")
    line = f"[kheaders] {message}"
    if capman is not None:
        with capman.global_and_fixture_disabled():
            os.write(2, (line + "\n").encode())
    else:
        os.write(2, (line + "\n").encode())


@pytest.fixture(scope="session")
def suite_settings(pytestconfig: pytest.Config) -> settings.Settings:
    return pytestconfig.stash[SETTINGS]


@pytest.fixture(scope="session")
def recorder(pytestconfig: pytest.Config) -> Recorder:
    return pytestconfig.stash[RECORDER]


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Target:
    value: Target = request.param
    return value


@pytest.fixture(scope="session")
def kernel_source(suite_settings: settings.Settings) -> KernelSource:
    if suite_settings.kernel_src is not None:
        return user_source(suite_settings.kernel_src, suite_settings.cache_dir)
    return embedded_source(suite_settings.cache_dir, suite_settings.kernel_package)


def build_options(s: settings.Settings) -> BuildOptions:
    """The run's build options, one place for every build of the run (the session's
    kernels, the incremental steps, out-of-tree modules): same cache, jobs, fragments and
    flavor, so they share the session's object tree."""
    return BuildOptions(cache_dir=s.cache_dir, jobs=s.build_jobs,
                        extra_fragments=s.extra_fragments, flavor=s.flavor)


@pytest.fixture(scope="session")
def kernel_build(target: Target, kernel_source: KernelSource,
                 suite_settings: settings.Settings, pytestconfig: pytest.Config) -> KernelBuild:
    opts = build_options(suite_settings)
    arch = arches.get(target.arch)
    say = lambda m: progress(pytestconfig, m)  # noqa: E731
    if not arch.is_native:
        prefetch_rootfs(suite_settings.cache_dir, arch, say)
    return ensure_build(kernel_source, arch, variants.get(target.variant), opts, say)


_PREFETCHED: set[str] = set()


def prefetch_rootfs(cache_dir: Path, arch: Arch, say: Callable[[str], None]) -> None:
    """Build a foreign arch's root filesystem in the background while its kernel builds (or
    waits for another arch's cold build): mmdebstrap is mostly downloads and qemu-user.
    The boot asks for it again under the same lock, and reports any failure itself."""
    if arch.name in _PREFETCHED:
        return
    _PREFETCHED.add(arch.name)

    def work() -> None:
        from kheaders_suite.boot.rootfs import ensure_rootfs

        try:
            ensure_rootfs(cache_dir, arch, say)
        except Exception as exc:  # the boot retries and raises it where it belongs
            say(f"{arch.name}: root filesystem in the background failed: {exc}")

    threading.Thread(target=work, name=f"rootfs-{arch.name}", daemon=True).start()


@pytest.fixture(scope="session")
def guest(target: Target, kernel_build: KernelBuild, suite_settings: settings.Settings,
          pytestconfig: pytest.Config, recorder: Recorder) -> Iterator[Guest]:
    from kheaders_suite.session.connect import boot

    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    log = suite_settings.results_dir / "consoles" / f"{target.id}-{worker}.log"
    booted = boot(kernel_build, settings.boot_options(suite_settings), log,
                  lambda m: progress(pytestconfig, m))
    recorder.add("boot", target.id, seconds=round(booted.boot_seconds, 2),
                 accel=booted.accel.name, release=kernel_build.release)
    try:
        # The boot log (the proc/debugfs patches' init runs there): a report errors every
        # test of the target, once, with this scan (pytest keeps a session fixture's error).
        raise_if_reported(booted, f"the boot of {target.id}")
        yield booted
    finally:
        booted.close()


@pytest.fixture
def variant(target: Target) -> Variant:
    return variants.get(target.variant)


@pytest.fixture
def kheaders(guest: Guest, kernel_build: KernelBuild) -> Iterator[str]:
    """The archive made present for one test, removed again afterwards."""
    with steps.archive_present(guest, kernel_build) as path:
        yield path


def guest_of(item: pytest.Item) -> Guest | None:
    g = getattr(item, "funcargs", {}).get("guest")
    return g if isinstance(g, Guest) else None


def raise_if_reported(g: Guest | None, phase: str) -> None:
    """A kernel report outside a test body errors the test (KernelReported)."""
    if g is not None:
        scan = g.scan_kernel_log(phase)
        if scan.reports:
            raise KernelReported(scan)


def renew_lost_guest(item: pytest.Item) -> None:
    """A target whose VM was lost (QEMU killed, a panic) boots again for its next test,
    instead of erroring every later test of the target. A boot that failed stays failed:
    pytest keeps the session fixture's exception, so the rest of the target errors at once
    with the original cause. (pytest has no public way to drop one cached fixture value;
    FixtureDef.finish is what it calls itself when a parameter changes.)"""
    info = getattr(item, "_fixtureinfo", None)
    defs = info.name2fixturedefs.get("guest") if info is not None else None
    cached = defs[-1].cached_result if defs else None
    if defs and cached is not None and isinstance(cached[0], Guest) and not cached[0].vm.alive():
        progress(item.config, f"{item.name}: the previous test lost its VM; booting a new one")
        defs[-1].finish(item._request)  # type: ignore[attr-defined]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    """Before the fixtures: replace a lost VM. After them: what the kernel printed while they
    ran (modprobe, mounts)."""
    renew_lost_guest(item)
    result = yield
    raise_if_reported(guest_of(item), f"the set-up of {item.name}")
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """After every VM test, what the kernel printed during it: a BUG/WARNING/Oops/panic fails
    the test, and outranks whatever the test body raised (a panic loses the VM)."""
    failure: BaseException | None = None
    try:
        result = yield
    except BaseException as exc:
        failure = exc
    g = guest_of(item)
    if g is not None:
        scan = g.scan_kernel_log(item.name)
        if scan.reports:
            item.stash[KERNEL_REPORTED] = True
            raise AssertionError(scan.describe()) from failure
    if isinstance(failure, GuestTimeout) and g is not None and g.vm.alive() \
            and not g.responsive():
        progress(item.config, f"{item.name}: the guest hangs; closing it")
        g.vm.close()  # the next test of the target boots a new one (renew_lost_guest)
    if failure is not None:
        raise failure
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item,
                            nextitem: pytest.Item | None) -> Generator[None, object, object]:
    """After the teardown (rmmod, umount; the guest's close after a target's last test):
    read from the console when the VM is gone by then."""
    g = guest_of(item)
    failure: BaseException | None = None
    try:
        result = yield
    except BaseException as exc:
        failure = exc
    raise_if_reported(g, f"the teardown of {item.name}")
    if failure is not None:
        raise failure
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Mark infrastructure faults in a test body (verdict.py), and attach the VM's console
    tail and how to reproduce it by hand to every failing or erroring test."""
    report: pytest.TestReport = yield
    if not report.failed:
        return report
    g = guest_of(item)
    exc = call.excinfo.value if call.excinfo is not None else None
    if isinstance(exc, KernelReported):
        setattr(report, KERNEL_ATTR, True)
    if call.when == "call" and not item.stash.get(KERNEL_REPORTED, False):
        reason = verdict.infra_reason(exc, g.vm.alive() if g is not None else None)
        if reason:
            setattr(report, verdict.INFRA_ATTR, reason)
            report.user_properties.append((verdict.INFRA_PROPERTY, reason))
    if g is not None:
        report.sections.append(("VM console (tail)",
                                f"{g.vm.console}\n{console.tail(g.vm.own_console(), 60)}"))
    how = reproduce_text(item, g)
    if how:
        report.sections.append(("reproduce by hand", how))
    return report


def reproduce_text(item: pytest.Item, g: Guest | None) -> str | None:
    callspec = getattr(item, "callspec", None)
    t = callspec.params.get("target") if callspec is not None else None
    if not isinstance(t, Target):
        return None
    s = item.config.stash[SETTINGS]
    source = (["--kernel-src", str(s.kernel_src)] if s.kernel_src
              else ["--kernel-package", s.kernel_package])
    build = getattr(item, "funcargs", {}).get("kernel_build")
    build_dir = build.dir if isinstance(build, KernelBuild) else None
    shell = shell_command(g.vm.spec, "vng") if g is not None else None
    return verdict.reproduce(item.nodeid, source, t.arch, build_dir, shell)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int,
                            config: pytest.Config) -> None:
    """One line per archive check and target; the timing table when timings were taken."""
    rec = config.stash[RECORDER]
    checks = rec.of_kind("verify")
    if checks:
        terminalreporter.section("kheaders: archive vs build")
        for r in sorted(checks, key=lambda r: (r["target"], r["check"])):
            mark = "ok  " if r["ok"] else "FAIL"
            terminalreporter.write_line(f"{mark} {r['target']:16} {r['check']:12} {r['summary']}")
    timings = rec.of_kind("timing") + rec.of_kind("bcc")
    if timings:
        from kheaders_suite.timing.summary import summary_lines

        terminalreporter.section("kheaders: compile timing in the guest")
        for line in summary_lines(timings):
            terminalreporter.write_line(line)
    for r in rec.of_kind("tamper"):
        terminalreporter.write_line(f"kheaders: tamper catalogue caught {r['caught']}/{r['total']}")
    counts = config.stash[OUTCOMES].summary()
    if counts:
        terminalreporter.write_line(counts)


class OutcomeCounter:
    """Counts what ran, and whose fault each failure was, on the controller too (xdist
    replays every worker's reports there). Presents a test body's infrastructure fault as
    the ERROR it is: in the terminal and in JUnit (<error>, not <failure>)."""

    def __init__(self, config: pytest.Config | None = None) -> None:
        self.config = config
        self.run = 0
        self.skipped = 0
        self.kernel_failures = 0  # FAIL, and kernel reports in fixtures (ERROR)
        self.infra_errors: list[str] = []

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> Generator[None, None, None]:
        xfail = hasattr(report, "wasxfail")
        infra = getattr(report, verdict.INFRA_ATTR, None)
        if report.when == "call" and (report.passed or report.failed or xfail):
            self.run += 0 if infra else 1
        elif report.skipped and not xfail:
            self.skipped += 1
        if report.failed and not xfail:
            kernel = getattr(report, KERNEL_ATTR, False) or (report.when == "call" and not infra)
            if kernel:
                self.kernel_failures += 1
            else:
                self.infra_errors.append(report.nodeid)
        yield
        if infra:
            junit_as_error(self.config, report, str(infra))

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report: pytest.TestReport
                                 ) -> tuple[str, str, tuple[str, dict[str, bool]]] | None:
        if report.when == "call" and report.failed and getattr(report, verdict.INFRA_ATTR, None):
            return "error", "E", ("ERROR", {"red": True})
        return None

    def summary(self) -> str | None:
        if not (self.kernel_failures or self.infra_errors):
            return None
        return (f"kheaders: {self.kernel_failures} kernel failures (FAIL, or a kernel report "
                f"in a fixture), {len(self.infra_errors)} infrastructure errors (ERROR: not a "
                "verdict on the kernel; see 'reproduce by hand' in each report)")

    def nothing_ran(self, exitstatus: int) -> bool:
        """A green exit where every selected test was skipped: nothing was checked, and a
        run that asked for a kernel and a variant must not pass without them."""
        return exitstatus == 0 and self.run == 0 and self.skipped > 0


def junit_as_error(config: pytest.Config | None, report: pytest.TestReport, reason: str) -> None:
    """pytest's JUnit writer makes every failed test body a <failure>; an infrastructure
    fault is an <error> (CI systems count them apart). Edits the element it just wrote."""
    from _pytest.junitxml import xml_key

    xml = config.stash.get(xml_key, None) if config is not None else None
    if xml is None:
        return
    for node in reversed(xml.node_reporter(report).nodes):
        if node.tag == "failure":
            node.tag = "error"
            node.set("message", f"infrastructure: {reason}")
            return


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    counter = config.stash[OUTCOMES]
    if getattr(config, "workerinput", None) is None and session.exitstatus == \
            pytest.ExitCode.NO_TESTS_COLLECTED and config.option.keyword:
        progress(config, f"-k {config.option.keyword!r} selected no test: ids are "
                         f"<arch>-<variant>, arches {', '.join(arches.names())}, variants "
                         f"{', '.join(variants.names())} (e.g. -k 'x86_64 and proc')")
    if getattr(config, "workerinput", None) is None and counter.nothing_ran(
            int(session.exitstatus)):
        progress(config, f"every selected test ({counter.skipped}) was skipped: "
                         "nothing was checked, exit status 1 (see the skip reasons: -rs)")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    rec = config.stash[RECORDER]
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[WORKER_KEY] = rec.to_json()
        return
    if rec.records:
        s = config.stash[SETTINGS]
        rec.write(s.results_dir / "results.json",
                  {"host": platform.node(), "arches": s.arches, "accel_option": s.accel})


def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: merge a worker's records."""
    text = getattr(node, "workeroutput", {}).get(WORKER_KEY)
    if text:
        node.config.stash[RECORDER].merge_json(text)


__all__ = ["Path"]
