"""CI on kernel patches (issue 12), the report side: base against patched, and its outputs.

The orchestrator builds and runs both sides of every arch x variant, then per job:

    side.load_side(...)          x2  -> SideResult   JUnit XML, results.json, archive, .config
    compare.compare_job(b, p)        -> JobReport    regressions, fixes, infra errors, archive,
                                                     CONFIG_, timing; the job's verdict
    document.job_report(job, run)    -> ReportDoc    the JSON document (schema_version 1)
    render.write_outputs(dir, doc)                   report.json, report.md, kcidb.json

and kheaders-ci-merge (merge.py) joins the jobs' report.json files into one report, adding
what spans jobs (arch divergence) and the overall verdict. Everything here but the file
reading in side.py, compare_job's archive/.config reads and the writers is pure.
"""
