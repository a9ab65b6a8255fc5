"""Former home of the timing helpers; they live in `benchmarks.timing` (kept importable here)."""

from benchmarks.timing import SavedTensorMeter, Timings, interleave, interleaved_medians, time_once

__all__ = ["SavedTensorMeter", "Timings", "interleave", "interleaved_medians", "time_once"]
