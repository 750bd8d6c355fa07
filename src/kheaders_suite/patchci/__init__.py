"""CI on kernel patches: base against patched, and its outputs.

The orchestrator, kheaders-ci (cli.py), validates and prepares the two commits, then runs the
suite on both sides of every arch x variant:

    series.py   the series from --range A..B or --mbox FILE... (read-only on the user's tree)
    clone.py    the shared clone at a stable path, git am of the series, checkouts
    run.py      one pytest run per side and job, and the side's status from what it left;
                the patched side's second looks (the side again, its suspects by node id)

then per job (the report side):

    side.load_side(...)          x2  -> SideResult   JUnit XML, results.json, archive, .config
    compare.compare_job(b, p)        -> JobReport    regressions, fixes, flaky, infra errors,
                                                     archive, CONFIG_, timing; the verdict
      layouts.compare_archives(...)  -> LayoutDiff   structure layouts that moved (the layout
                                                     probe, gcc -S against each archive)
    document.job_report(job, run)    -> ReportDoc    the JSON document (schema_version 2)
    render.write_outputs(dir, doc)                   report.json, report.md, kcidb.json,
                                                     junit.xml (junitreport.py)

and kheaders-ci-merge (merge.py) joins the jobs' report.json files into one report, adding
what spans jobs (arch divergence) and the overall verdict. Everything here but the file
reading in side.py, compare_job's archive/.config reads, the probe compiles in layouts.py
and the writers is pure.
"""
