"""The plot: wall time vs N, one line per strategy (and compiler), one panel per arch/variant.

Medians with min-max bars; extract-once's one-time extraction as a dotted line. Agg backend:
no display, safe in CI and in xdist workers. Written atomically next to the JSON files.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kheaders_suite.records import target_id
from kheaders_suite.timing.stats import summarize

COMBINED = "compile-timing.png"
STYLES = {"extract-once": "o-", "per-invocation": "s-", "pre-installed": "^-",
          "in-memory": "D-"}
RESIDENT = {"memory": "D:", "memory-used": "d:", "tmpfs": "o:", "shared": "^:"}


def write_plot(docs: Sequence[dict[str, Any]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not docs:
        raise ValueError("no result documents to plot")
    cols = min(2, len(docs))
    rows = math.ceil(len(docs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.4 * cols, 4.4 * rows), squeeze=False)
    for ax, doc in zip(axes.flat, docs, strict=False):
        _panel(ax, doc)
    for ax in list(axes.flat)[len(docs):]:
        ax.set_visible(False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.png")
    fig.savefig(partial, dpi=100)
    plt.close(fig)
    os.replace(partial, path)
    return path


def _panel(ax: Any, doc: dict[str, Any]) -> None:
    for compiler in sorted({p["compiler"] for p in doc["points"]}):
        for strategy in STYLES:
            pts = sorted((p for p in doc["points"] if p["compiler"] == compiler
                          and p["strategy"] == strategy and p["samples"]),
                         key=lambda p: p["n"])
            if not pts:
                continue
            ns = [p["n"] for p in pts]
            sums = [summarize(p["samples"]) for p in pts]
            med = [s.median for s in sums]
            err = [[s.median - s.min for s in sums], [s.max - s.median for s in sums]]
            label = strategy if compiler == "gcc" else f"{strategy} ({compiler})"
            fmt = STYLES[strategy] if compiler == "gcc" else STYLES[strategy].replace("-", "--")
            ax.errorbar(ns, med, yerr=err, fmt=fmt, capsize=3, label=label)
    _resident(ax, doc.get("resident"))
    extraction = doc["extraction"].get("samples") or doc["extraction"].get("warmup")
    if extraction:
        ax.axhline(summarize(extraction).median, linestyle=":", color="grey",
                   label="one-time extraction")
    ax.set_xscale("log", base=2)
    ax.set_xticks(doc["ns"], [str(n) for n in doc["ns"]])
    ax.set_xlabel(f"parallel jobs N ({len(doc['workload'])} compiles each)")
    ax.set_ylabel("batch wall time (s)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"{target_id(doc['arch'], doc['variant'])} {doc['release']} "
                 f"{doc['accel']} {doc['online_cpus']} vCPUs", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)


def _resident(ax: Any, resident: dict[str, Any] | None) -> None:
    """libclang parses with headers already in memory, on tmpfs, over the shared fs."""
    for source, fmt in RESIDENT.items():
        pts = sorted((p for p in (resident or {}).get("points", [])
                      if p["source"] == source and p["samples"]), key=lambda p: p["n"])
        if pts:
            ax.plot([p["n"] for p in pts], [summarize(p["samples"]).median for p in pts], fmt,
                    label=f"parse only, headers {source} (libclang)")


def refresh_combined(directory: Path) -> Path | None:
    """Re-draw the all-targets plot from every result file in ``directory`` (under a lock:
    xdist workers finish targets at the same time)."""
    from kheaders_suite.host.locks import file_lock
    from kheaders_suite.timing import results

    with file_lock(directory / f".{COMBINED}.lock", timeout=300.0):
        docs = list(results.load_dir(directory))
        return write_plot(docs, directory / COMBINED) if docs else None
