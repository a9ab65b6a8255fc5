r"""A small attention decoder for speech translation over a shared encoder, and its word vocabulary.

The Objective Soups code (Saif et al., arXiv 2508.09228) translates with a small ``nn.Transformer``
decoder head on top of the shared speech encoder. `TranslationDecoder` is that head: token embeddings
plus sinusoidal positions, ``layers`` pre-norm transformer decoder blocks (causal self-attention,
cross-attention to the encoder frames, feed-forward) and an output projection, trained with teacher
forcing:

$$
\mathcal L_{\mathrm{ST}} = -\frac{1}{\sum_b (U_b + 1)} \sum_b \sum_{u=1}^{U_b+1}
\log p(y_{b,u} \mid y_{b,<u}, h_b), \qquad y_{b,0} = \texttt{BOS},\ y_{b,U_b+1} = \texttt{EOS}.
$$

Shapes: encoder frames ``memory (B, T', D)`` with lengths ``(B,)``; targets ``(B, U)`` padded with 0
(`WordVocab` reserves 0 for padding and 1 for BOS/EOS); logits ``(B, U + 1, V)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.checks import check_int, check_real
from zoo.models.dota import sinusoidal_positions

__all__ = ["TranslationDecoder", "WordVocab"]

PAD, BOS = 0, 1


class WordVocab:
    """Whitespace-separated words as ids: 0 = padding, 1 = BOS/EOS, 2 = unknown, then the words.

    Examples:
        >>> v = WordVocab.from_texts(["forty two", "two cats"])
        >>> v.encode("two cats"), v.decode(v.encode("forty dogs"))
        ([5, 3], 'forty <unk>')
    """

    def __init__(self, words: Sequence[str]) -> None:
        if len(set(words)) != len(words):
            raise ValueError("words must be distinct")
        if any(not w or any(c.isspace() for c in w) for w in words):
            raise ValueError("words must be non-empty and contain no whitespace")
        self.words = ["<pad>", "<s>", "<unk>", *words]
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> WordVocab:
        """The sorted set of words in ``texts``."""
        return cls(sorted({w for t in texts for w in t.split()}))

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    @property
    def blank_id(self) -> int:
        return PAD

    def encode(self, text: str) -> list[int]:
        return [self.index.get(w, 2) for w in text.split()]

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.words[i] for i in ids if i > BOS and i < len(self.words))

    def state_dict(self) -> dict[str, Any]:
        return {"words": self.words[3:]}

    def __repr__(self) -> str:
        return f"WordVocab({self.vocab_size} ids)"


def _key_padding(lens: Tensor, T: int) -> Tensor:
    return torch.arange(T, device=lens.device)[None, :] >= lens[:, None]


class TranslationDecoder(nn.Module):
    """Transformer decoder head: ``(memory, memory_lens, targets) → logits``; see the module docstring.

    Args:
        dim: encoder width D (the decoder's width).
        vocab_size: target ids including padding (0) and BOS/EOS (1).
        layers: decoder blocks; heads: attention heads; ff: feed-forward width (default 2·D).
        dropout: dropout in every block.

    Examples:
        >>> dec = TranslationDecoder(16, vocab_size=10, layers=1, heads=2)
        >>> mem, lens = torch.randn(2, 7, 16), torch.tensor([7, 5])
        >>> y, ylens = torch.tensor([[3, 4, 5], [6, 0, 0]]), torch.tensor([3, 1])
        >>> dec(mem, lens, y).shape
        torch.Size([2, 4, 10])
        >>> bool(dec.loss(mem, lens, y, ylens) > 0), len(dec.greedy(mem, lens, max_len=4))
        (True, 2)
    """

    def __init__(
        self,
        dim: int,
        vocab_size: int,
        *,
        layers: int = 1,
        heads: int = 2,
        ff: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.dim = check_int(dim, "dim", low=1)
        self.vocab_size = check_int(vocab_size, "vocab_size", low=3)
        check_int(layers, "layers", low=1)
        check_int(heads, "heads", low=1)
        if dim % heads:
            raise ValueError(f"heads ({heads}) must divide dim ({dim})")
        check_real(dropout, "dropout", low=0.0, high=1.0, high_open=True)
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        block = nn.TransformerDecoderLayer(
            dim, heads, ff or 2 * dim, dropout=dropout, batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerDecoder(block, layers)
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, vocab_size)

    def forward(self, memory: Tensor, memory_lens: Tensor, targets: Tensor) -> Tensor:
        """Teacher-forced logits ``(B, U + 1, V)`` for the inputs ``[BOS, y_1..y_U]``."""
        if memory.dim() != 3 or memory.shape[2] != self.dim:
            raise ValueError(f"memory must be (B, T', {self.dim}), got {tuple(memory.shape)}")
        if targets.dim() != 2 or targets.shape[0] != memory.shape[0]:
            raise ValueError(f"targets must be (B, U) with B = {memory.shape[0]}, got {tuple(targets.shape)}")
        B = targets.shape[0]
        inp = torch.cat([torch.full((B, 1), BOS, dtype=targets.dtype, device=targets.device), targets], 1)
        return self._decode(memory, memory_lens, inp)

    def _decode(self, memory: Tensor, memory_lens: Tensor, inp: Tensor) -> Tensor:
        U = inp.shape[1]
        pos = sinusoidal_positions(torch.arange(U, device=inp.device), self.dim).to(memory.dtype)
        x = self.embed(inp) * self.dim**0.5 + pos
        causal = torch.ones(U, U, dtype=torch.bool, device=inp.device).triu(1)  # True: may not attend
        mem_pad = _key_padding(memory_lens.to(memory.device), memory.shape[1])
        h = self.blocks(x, memory, tgt_mask=causal, memory_key_padding_mask=mem_pad)
        return self.out(self.norm(h))  # type: ignore[no-any-return]

    def loss(self, memory: Tensor, memory_lens: Tensor, targets: Tensor, target_lens: Tensor) -> Tensor:
        """Mean cross-entropy per target token (EOS included), padding ignored."""
        logits = self(memory, memory_lens, targets)
        B = targets.shape[0]
        gold = torch.cat([targets, torch.zeros(B, 1, dtype=targets.dtype, device=targets.device)], 1)
        gold = gold.scatter(1, target_lens.to(gold.device)[:, None].long(), BOS)  # EOS after the last word
        return F.cross_entropy(
            logits.float().reshape(-1, self.vocab_size), gold.reshape(-1), ignore_index=PAD
        )

    @torch.no_grad()
    def greedy(self, memory: Tensor, memory_lens: Tensor, max_len: int = 30) -> list[list[int]]:
        """Greedy decoding until EOS or ``max_len`` ids (the ids exclude BOS/EOS)."""
        check_int(max_len, "max_len", low=1)
        B = memory.shape[0]
        inp = torch.full((B, 1), BOS, dtype=torch.long, device=memory.device)
        done = torch.zeros(B, dtype=torch.bool, device=memory.device)
        for _ in range(max_len):
            nxt = self._decode(memory, memory_lens, inp)[:, -1].argmax(-1)
            nxt = nxt.masked_fill(done, PAD)
            done |= nxt == BOS
            inp = torch.cat([inp, nxt[:, None]], 1)
            if bool(done.all()):
                break
        out = []
        for row in inp[:, 1:].tolist():
            ids = []
            for i in row:
                if i in (BOS, PAD):
                    break
                ids.append(i)
            out.append(ids)
        return out
