"""The pytest plugin (loaded as ``-p kheaders_suite.plugin``), one module per job:

    options   the suite's options, read into one frozen Settings record
    context   what the run keeps on the config's stash; progress lines past the capture
    hooks     settings, target parametrization and order, terminal summary, results file
    fixtures  the chain target -> kernel_build -> guest_boot -> guest -> kheaders
    boots     one target's VM across its tests: a failed boot fails the rest at once
    phases    kernel-log scans around each phase, blame and console tail on reports
    outcomes  kernel failures against infrastructure errors, and the exit status
    junit     an infrastructure fault in a test body written as <error>, not <failure>
    prefetch  a foreign arch's root filesystem built while its kernel builds
    faults    faults injected on request (KHEADERS_SUITE_FAULT), to exercise the harness
"""

pytest_plugins = (
    "kheaders_suite.plugin.hooks",
    "kheaders_suite.plugin.fixtures",
    "kheaders_suite.plugin.phases",
    "kheaders_suite.plugin.outcomes",
    "kheaders_suite.plugin.junit",
    "kheaders_suite.plugin.faults",
)
