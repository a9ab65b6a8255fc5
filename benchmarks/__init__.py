"""The benchmark suite: named claims with verdicts, JSON records, figures and a Markdown report.

Run ``python -m benchmarks`` (``--list``, ``--only NAME``, ``--full``). Claims live in
`benchmarks.claims`, one module per topic; see `benchmarks.harness` for how to write one.
"""
