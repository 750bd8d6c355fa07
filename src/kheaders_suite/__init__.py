"""Build, boot and check CONFIG_IKHEADERS kernels under virtme-ng.

The package is a pipeline, one subpackage a stage, imports only downward:

    source -> build -> boot -> session -> verify / timing -> report -> plugin -> patchci

with the shared records (records.py), the error families (errors.py) and the catalogue data
(catalog/) below every stage, and host process handling (host/) below source. docs/design.md
says what each holds.

``HARNESS_VERSION`` is part of every build key: bump it when the build recipe changes so that
cached kernels built the old way are not reused.
"""

HARNESS_VERSION = "3"
