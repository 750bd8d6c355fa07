"""Reporting: the results file and who is to blame for a failure."""
