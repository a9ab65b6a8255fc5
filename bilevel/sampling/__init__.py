"""Epoch samplers: soft random sampling (SRS, arXiv 2311.12727), its distributed version, the comparison
samplers (full shuffled epochs, a fresh subset without replacement, a fixed subset or coreset) and a
length-bucketing batch sampler for variable-length data.

Closed forms for coverage, occupancy and convergence live in [`bilevel.theory.srs`][bilevel.theory.srs].
"""

from bilevel.sampling._common import EpochSampler, draw_count, epoch_generator
from bilevel.sampling.bucketing import BucketBatchSampler, bucket_batches
from bilevel.sampling.distributed import DistributedSoftRandomSampler
from bilevel.sampling.soft_random import SoftRandomSampler, soft_random_indices
from bilevel.sampling.subsets import FixedSubsetSampler, FreshSubsetSampler, ShuffledSampler, k_center_greedy

__all__ = [
    "BucketBatchSampler",
    "DistributedSoftRandomSampler",
    "EpochSampler",
    "FixedSubsetSampler",
    "FreshSubsetSampler",
    "ShuffledSampler",
    "SoftRandomSampler",
    "bucket_batches",
    "draw_count",
    "epoch_generator",
    "k_center_greedy",
    "soft_random_indices",
]
