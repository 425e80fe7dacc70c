"""The paper's tables and figures from real runs (issue #6).

``python -m mesimp.report`` reads every run the tables need under a sweep root and writes Markdown and CSV
tables, PNG figures and their sources; ``python -m mesimp.report.reproduce`` (``make reproduce-tables``) first
runs whatever is missing. The tables themselves, with the paper's numbers, are data: ``mesimp.report.paper``.
"""
