"""The benchmark suite: named claims with verdicts, JSON records, figures and a Markdown report.

Run ``python -m benchmarks`` (``--list``, ``--only NAME``, ``--full``). Claims live in
:mod:`benchmarks.claims`, one module per topic; see :mod:`benchmarks.harness` for how to write one.
"""
