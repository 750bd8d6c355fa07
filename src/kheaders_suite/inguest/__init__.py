"""Small programs the suite uploads and runs inside the guest (with the guest's python3)."""

from __future__ import annotations

from importlib import resources

# compilebench.py and the module it imports, by where they go under the upload directory: the
# guest's python3 puts the script's directory first on sys.path, and finds batch.py there as
# kheaders_suite.inguest.batch (directories without __init__.py are namespace packages), the
# name the host's mypy and tests know it by.
BENCH_FILES = {"compilebench.py": "compilebench.py",
               "kheaders_suite/inguest/batch.py": "batch.py"}


def source(name: str) -> bytes:
    return resources.files(__package__).joinpath(name).read_bytes()


def bench_files() -> dict[str, bytes]:
    """BENCH_FILES' contents: upload path relative to the upload directory -> bytes."""
    return {path: source(name) for path, name in BENCH_FILES.items()}
