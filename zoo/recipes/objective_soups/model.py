r"""The multi-head model of the Objective Soups recipe and its objectives.

A shared Conformer encoder θ (`zoo.models.conformer.ConformerEncoder`, the encoder of
[`zoo.models.ConformerCTC`][zoo.models.ConformerCTC]) feeds three kinds of heads:

- **one CTC head per language** (``asr_<lang>``: a linear layer over the characters). The authors'
  multilingual code keeps one head per (language, task); separate heads make every head's gradient
  come from its own objective only, so the conflicts measured on θ are the languages' own, and a
  language's head cannot be overwritten by another's updates;
- **one attention decoder per translated language** (``st_<lang>``, X→en:
  [`zoo.models.translation.TranslationDecoder`][zoo.models.translation.TranslationDecoder], a small
  transformer decoder as in the authors' code);
- **the CPC/InfoNCE head** (``ssl``: [`zoo.losses.CPCLoss`][zoo.losses.CPCLoss]) on unlabelled audio.

With L languages of which L − 1 are translated into English there are $2L$ objectives (12 with the
corpus' six languages). ``objectives(batch)`` computes them all from one step's batch: one encoder pass
per language feeds that language's CTC head and decoder, and CPC encodes its two windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.checks import check_int
from zoo.decoding import ctc_greedy
from zoo.losses import CPCLoss
from zoo.models.conformer import ConformerEncoder, conformer_config
from zoo.models.translation import TranslationDecoder

__all__ = ["SoupsModel", "SoupsModelConfig", "objective_names"]


def objective_names(languages: Sequence[str], translate: Sequence[str]) -> list[str]:
    """``asr_<lang>`` for every language, ``st_<lang>`` for every translated one, then ``ssl``."""
    return [f"asr_{x}" for x in languages] + [f"st_{x}" for x in translate] + ["ssl"]


@dataclass(frozen=True)
class SoupsModelConfig:
    """Sizes of the shared encoder and the heads.

    Attributes:
        d_model, num_layers, num_heads, conv_kernel, stack: the Conformer encoder (block attention of
            50 frames, layer-norm convolution module so that a row's output does not depend on the batch).
        decoder_layers, decoder_heads: the translation decoders.
        cpc_steps, cpc_context, cpc_future: CPC's predicted steps and window sizes (input frames).
    """

    d_model: int = 48
    num_layers: int = 2
    num_heads: int = 4
    conv_kernel: int = 7
    stack: int = 4
    decoder_layers: int = 1
    decoder_heads: int = 2
    cpc_steps: int = 3
    cpc_context: int = 48
    cpc_future: int = 24

    def __post_init__(self) -> None:
        for name in (
            "d_model",
            "num_layers",
            "num_heads",
            "conv_kernel",
            "stack",
            "decoder_layers",
            "decoder_heads",
            "cpc_steps",
            "cpc_context",
            "cpc_future",
        ):
            check_int(getattr(self, name), name, low=1)


class _Encoder(nn.Module):
    """``(feats, lens) → (hidden, lens)`` over a Conformer encoder (its own ``out`` layer is unused)."""

    def __init__(self, conformer: ConformerEncoder) -> None:
        super().__init__()
        self.conformer = conformer

    def forward(self, feats: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        out = self.conformer(feats, lens)
        return out.hidden, out.lengths


class SoupsModel(nn.Module):
    """Shared encoder plus per-objective heads (see the module docstring).

    Args:
        n_mels: input features per frame; char_vocab: CTC outputs (blank 0); word_vocab: translation ids.
        languages: recognised languages; translate: languages translated into English.
        cfg: sizes; seed: initialisation seed (also the CPC window generator's).
    """

    def __init__(
        self,
        n_mels: int,
        char_vocab: int,
        word_vocab: int,
        languages: Sequence[str],
        translate: Sequence[str],
        cfg: SoupsModelConfig | None = None,
        *,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not languages:
            raise ValueError("languages must name at least one language")
        bad = [x for x in translate if x not in languages]
        if bad:
            raise ValueError(
                f"translate names languages {bad} that are not among languages {list(languages)}"
            )
        cfg = cfg if cfg is not None else SoupsModelConfig()
        self.languages, self.translate, self.cfg = tuple(languages), tuple(translate), cfg
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            conf = ConformerEncoder(
                conformer_config(
                    "tiny",
                    n_mels=n_mels,
                    vocab_size=2,
                    d_model=cfg.d_model,
                    num_layers=cfg.num_layers,
                    num_heads=cfg.num_heads,
                    conv_kernel=cfg.conv_kernel,
                    stack=cfg.stack,
                    self_conditioning=False,
                    mid_weight=0.0,
                    conv_norm="layer",
                )
            )
            self.encoder = _Encoder(conf)
            self.ctc = nn.ModuleDict({x: nn.Linear(cfg.d_model, char_vocab) for x in self.languages})
            self.decoders = nn.ModuleDict(
                {
                    x: TranslationDecoder(
                        cfg.d_model, word_vocab, layers=cfg.decoder_layers, heads=cfg.decoder_heads
                    )
                    for x in self.translate
                }
            )
            self.cpc = CPCLoss(
                cfg.d_model,
                steps=cfg.cpc_steps,
                context_frames=cfg.cpc_context,
                future_frames=cfg.cpc_future,
                seed=seed,
            )

    @property
    def objectives(self) -> list[str]:
        return objective_names(self.languages, self.translate)

    def shared_parameters(self) -> list[nn.Parameter]:
        """θ: the encoder's parameters (the Conformer's unused ``out`` layer excluded)."""
        unused = {id(p) for p in self.encoder.conformer.out.parameters()}
        return [p for p in self.encoder.parameters() if p.requires_grad and id(p) not in unused]

    def shared_named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """θ with names (``layers.0.ff1.net.1.weight``, ...), in the order of `shared_parameters()`."""
        keep = {id(p) for p in self.shared_parameters()}
        return [(n, p) for n, p in self.encoder.conformer.named_parameters() if id(p) in keep]

    def decoder(self, lang: str) -> TranslationDecoder:
        """The translation decoder of ``lang``."""
        dec = self.decoders[lang]
        if not isinstance(dec, TranslationDecoder):
            raise TypeError(f"decoders[{lang!r}] is not a TranslationDecoder")
        return dec

    def heads(self) -> dict[str, nn.Module]:
        """The head of every objective, by objective name."""
        out: dict[str, nn.Module] = {f"asr_{x}": self.ctc[x] for x in self.languages}
        out.update({f"st_{x}": self.decoders[x] for x in self.translate})
        out["ssl"] = self.cpc
        return out

    def objective_losses(
        self, batch: dict[str, Any], names: Sequence[str] | None = None
    ) -> dict[str, Tensor]:
        """The losses of ``names`` (default: every objective) on one draw ``{lang: batch, "ssl": batch}``.

        Raises:
            ValueError: an objective whose batch is missing (no ``lang`` or ``"ssl"`` entry, or a
                translation objective on a batch without ``trans``), or an unknown objective name.
        """
        names = list(self.objectives if names is None else names)
        unknown = [n for n in names if n not in self.objectives]
        if unknown:
            raise ValueError(f"unknown objectives {unknown}; this model has {self.objectives}")
        out: dict[str, Tensor] = {}
        for lang in self.languages:
            want = [n for n in (f"asr_{lang}", f"st_{lang}") if n in names]
            if not want:
                continue
            if lang not in batch:
                raise ValueError(
                    f"objectives {want} need a batch of language {lang!r}; the batch has {sorted(batch)}"
                )
            b = batch[lang]
            h, lens = self.encoder(b["feats"], b["feat_lens"])
            if f"asr_{lang}" in want:
                lp = self.ctc[lang](h).float().log_softmax(-1).transpose(0, 1)
                out[f"asr_{lang}"] = F.ctc_loss(
                    lp, b["tokens"], lens, b["token_lens"], blank=0, reduction="mean", zero_infinity=True
                )
            if f"st_{lang}" in want:
                if "trans" not in b or int(b["trans_lens"].min()) < 1:
                    raise ValueError(f"objective st_{lang} needs translation targets ('trans') in every item")
                out[f"st_{lang}"] = self.decoder(lang).loss(h, lens, b["trans"], b["trans_lens"])
        if "ssl" in names:
            if "ssl" not in batch:
                raise ValueError(f"objective 'ssl' needs an 'ssl' batch; the batch has {sorted(batch)}")
            out["ssl"] = self.cpc(self.encoder, batch["ssl"]["feats"], batch["ssl"]["feat_lens"])
        return {n: out[n] for n in names}

    @torch.no_grad()
    def transcribe(self, lang: str, feats: Tensor, feat_lens: Tensor) -> list[list[int]]:
        """Greedy CTC decoding with ``lang``'s head."""
        h, lens = self.encoder(feats, feat_lens)
        return ctc_greedy(self.ctc[lang](h), lens, blank=0)

    @torch.no_grad()
    def translate_ids(
        self, lang: str, feats: Tensor, feat_lens: Tensor, max_len: int = 24
    ) -> list[list[int]]:
        """Greedy X→en decoding with ``lang``'s decoder (word ids)."""
        h, lens = self.encoder(feats, feat_lens)
        return self.decoder(lang).greedy(h, lens, max_len=max_len)
