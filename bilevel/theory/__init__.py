"""Closed forms behind the library's algorithms (numpy only; no scipy at import time).

- [`bilevel.theory.srs`][bilevel.theory.srs]: coverage, occupancy, coupon-collector, convergence and stability
bounds for
  soft random sampling.
"""

from bilevel.theory import srs

__all__ = ["srs"]
