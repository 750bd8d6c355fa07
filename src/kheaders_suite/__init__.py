"""Build, boot and check CONFIG_IKHEADERS kernels under virtme-ng.

The package is a pipeline, one module a step:

    source -> kconfig -> build -> boot (vm, accel) -> guest -> verify / timing -> report

``HARNESS_VERSION`` is part of every build key: bump it when the build recipe changes so that
cached kernels built the old way are not reused.
"""

HARNESS_VERSION = "3"
