"""The fixture chain, one link per pipeline step:

    target (arch, variant) -> kernel_build -> guest_boot -> guest -> kheaders

target, kernel_build and guest_boot are session-scoped: one build and one VM per target.
guest is per test, so that a test after one that lost the VM gets a fresh one; kheaders
makes the archive present for one test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import partial

import pytest

from kheaders_suite.build.kernel import ensure_build
from kheaders_suite.catalog import arches, variants
from kheaders_suite.catalog.variants import Variant
from kheaders_suite.plugin import options
from kheaders_suite.plugin.boots import BootState, raise_if_reported
from kheaders_suite.plugin.context import RECORDER, SETTINGS, progress
from kheaders_suite.plugin.prefetch import prefetch
from kheaders_suite.records import KernelBuild, Target
from kheaders_suite.report.recorder import Recorder
from kheaders_suite.report.results import Accel, BootRecord
from kheaders_suite.session.guest import Guest
from kheaders_suite.source.tree import KernelSource, embedded_source, user_source


@pytest.fixture(scope="session")
def suite_settings(pytestconfig: pytest.Config) -> options.Settings:
    return pytestconfig.stash[SETTINGS]


@pytest.fixture(scope="session")
def recorder(pytestconfig: pytest.Config) -> Recorder:
    return pytestconfig.stash[RECORDER]


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Target:
    value: Target = request.param
    return value


@pytest.fixture(scope="session")
def kernel_source(suite_settings: options.Settings) -> KernelSource:
    if suite_settings.kernel_src is not None:
        return user_source(suite_settings.kernel_src, suite_settings.cache_dir)
    return embedded_source(suite_settings.cache_dir, suite_settings.kernel_package)


@pytest.fixture(scope="session")
def kernel_build(target: Target, kernel_source: KernelSource,
                 suite_settings: options.Settings, pytestconfig: pytest.Config) -> KernelBuild:
    opts = options.build_options(suite_settings)
    arch = arches.get(target.arch)
    say = lambda m: progress(pytestconfig, m)  # noqa: E731
    if not arch.is_native:
        prefetch(pytestconfig).start(suite_settings.cache_dir, arch, say)
    return ensure_build(kernel_source, arch, variants.get(target.variant), opts, say)


def boot_target(target: Target, build: KernelBuild, s: options.Settings,
                config: pytest.Config, recorder: Recorder) -> Guest:
    """Boot ``build`` for ``target`` until its guest answers and its boot log is clean."""
    from kheaders_suite.session.connect import boot

    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    log = s.results_dir / "consoles" / f"{target.id}-{worker}.log"
    booted = boot(build, options.boot_options(s), log, lambda m: progress(config, m))
    recorder.add(BootRecord(target=target.id, seconds=round(booted.boot_seconds, 2),
                            accel=Accel(booted.accel.name), release=build.release))
    try:
        # The boot log (the proc/debugfs patches' init runs there): a report fails this
        # boot, so every test of the target errors with it, once (BootState).
        raise_if_reported(booted, f"the boot of {target.id}")
    except BaseException:
        booted.close()
        raise
    return booted


@pytest.fixture(scope="session")
def guest_boot(target: Target, kernel_build: KernelBuild, suite_settings: options.Settings,
               pytestconfig: pytest.Config, recorder: Recorder) -> Iterator[BootState]:
    """The target's VM across its tests (boots.BootState); closed after its last test.
    Session fixtures that talk to the guest take this, and ask it for the guest."""
    state = BootState(target.id, partial(boot_target, target, kernel_build, suite_settings,
                                         pytestconfig, recorder),
                      lambda m: progress(pytestconfig, m))
    yield state
    state.close()


@pytest.fixture
def guest(guest_boot: BootState, request: pytest.FixtureRequest) -> Guest:
    """The target's running guest; a fresh one when the previous test lost the VM."""
    return guest_boot.guest(request.node.name)


@pytest.fixture
def variant(target: Target) -> Variant:
    return variants.get(target.variant)


@pytest.fixture
def kheaders(guest_boot: BootState, guest: Guest, kernel_build: KernelBuild,
             request: pytest.FixtureRequest) -> Iterator[str]:
    """The archive made present for one test, removed again afterwards. Once the set-up
    failed on the kernel's account, the target's later tests fail at once with its cause
    (boots.ArchiveSetupFailed)."""
    with guest_boot.archive(request.node.name, guest, kernel_build) as path:
        yield path
