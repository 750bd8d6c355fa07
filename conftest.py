"""Root conftest: the suite's fixtures and options come from the kheaders_suite plugin."""

pytest_plugins = ("kheaders_suite.plugin",)
