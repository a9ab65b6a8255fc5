"""Acoustic variety for training: augmented copies of a speech dataset, drawn once, features cached.

`AugmentedCopies` adds ``copies`` perturbed versions of every utterance of a
[`SpeechDataset`][zoo.data.SpeechDataset] to it, each drawn by an [`Augment`][zoo.data.Augment] pipeline
(speed and pitch perturbation, synthetic rooms, additive noise at random SNR, band limits) from a
``torch.Generator`` seeded by ``(seed, copy, item)``: the copies are a pure function of the seed, and their
features are computed once, like the clean ones. This is the Kaldi recipe's way with speed perturbation
(Ko et al., 2015: three copies at speeds 0.9, 1.0 and 1.1), extended to the other effects; drawing new
perturbations every epoch would need the waveforms in the training loop, at several times the cost per
step on a CPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from zoo.checks import check_int
from zoo.data.augment import Augment
from zoo.data.dataset import SpeechDataset

__all__ = ["AugmentedCopies"]


def _generator(seed: int, copy: int, item: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, copy, item]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class AugmentedCopies(Dataset[dict[str, Any]]):
    """A speech dataset followed by ``copies`` augmented versions of each of its items.

    Item $j$ is copy $c = \\lfloor j / n \\rfloor$ of item $i = j \\bmod n$ of ``base`` (copy 0 is ``base``
    itself when ``keep_clean``); the waveform of copy $c \\ge 1$ is ``augment`` applied to item $i$'s with
    the generator seeded by ``(seed, c, i)``, its features are ``base.features`` of that waveform (then
    ``base.transform``, e.g. SpecAugment, when set). Ids get a ``~aug<c>`` suffix.

    Args:
        base: the clean training set.
        augment: the pipeline (see ``zoo.data.AUGMENT_PRESETS``).
        copies: augmented copies per utterance (>= 1).
        seed: seeds every draw.
        keep_clean: keep the clean items too.
        progress: a progress bar while the copies are rendered.

    Examples:
        >>> from zoo.data import Augment
        >>> Augment(speeds=(0.9, 1.1)).draw(torch.Generator().manual_seed(0))["speed"] in (0.9, 1.1)
        True
    """

    def __init__(
        self,
        base: SpeechDataset,
        augment: Augment,
        copies: int = 2,
        seed: int = 0,
        keep_clean: bool = True,
        progress: bool = False,
    ) -> None:
        if not isinstance(base, SpeechDataset):
            raise TypeError(
                f"base must be a zoo.data.SpeechDataset (it needs waveforms), got {type(base).__name__}"
            )
        if not isinstance(augment, Augment):
            raise TypeError(f"augment must be a zoo.data.Augment, got {type(augment).__name__}")
        check_int(copies, "copies", low=1)
        check_int(seed, "seed", low=0)
        self.base, self.augment, self.copies, self.seed = base, augment, copies, seed
        self.keep_clean = bool(keep_clean)
        n = len(base)
        self._feats: list[Tensor] = []
        self.params: list[dict[str, Any]] = []
        with torch.no_grad():
            for j in tqdm(range(n * copies), desc="augmented copies", disable=not progress, leave=False):
                c, i = j // n + 1, j % n
                u = base.utterances[i]
                y, p = augment(base.waveform(i), u.sample_rate, _generator(seed, c, i))
                self._feats.append(base.features(y).float())
                self.params.append(p)

    def __len__(self) -> int:
        return len(self.base) * (self.copies + int(self.keep_clean))

    def _where(self, j: int) -> tuple[int, int]:
        if not 0 <= j < len(self):
            raise IndexError(f"item {j} out of range for {len(self)} items")
        n = len(self.base)
        c, i = divmod(j, n)
        return (c if self.keep_clean else c + 1), i

    @property
    def lengths(self) -> list[int]:
        """Feature frames of every item (the copies' from their features: speed changes them)."""
        clean = self.base.lengths if self.keep_clean else []
        return clean + [int(f.shape[0]) for f in self._feats]

    def __getitem__(self, j: int) -> dict[str, Any]:
        c, i = self._where(j)
        item = self.base[i]
        if c == 0:
            return item
        f = self._feats[(c - 1) * len(self.base) + i]
        if self.base.transform is not None:
            f = self.base.transform(f)
        return {**item, "id": f"{item['id']}~aug{c}", "feats": f}
