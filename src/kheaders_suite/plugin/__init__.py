"""The pytest plugin: options, fixtures, hooks (loaded as ``-p kheaders_suite.plugin``)."""

pytest_plugins = ("kheaders_suite.plugin.suite",)
