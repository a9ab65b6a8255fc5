"""Device placement of the zoo models: no tensor is created on the default (CPU) device inside a model.

Bug class: a factory call such as ``torch.arange(T)`` or ``torch.zeros(B, dtype=torch.long)`` inside
``forward``/``transcribe``/streaming code makes a CPU tensor; on CPU nothing fails, on a GPU the next op
raises ``Expected all tensors to be on the same device``.

How this is caught without a GPU: :class:`_FactoryRecorder`, a :class:`torch.overrides.TorchFunctionMode`,
sees every ``torch.*`` call made while a model runs. It records each tensor factory (``arange``, ``zeros``,
``ones``, ``full``, ``tensor``, ``as_tensor``, ``empty``, ``eye``, ``linspace``, ``rand*``) that is called
directly from a source file of the ``zoo`` package without an explicit, non-``None`` ``device=``
argument. Calls made by torch itself (``nn.TransformerEncoder`` and friends) are not ours and are ignored;
``*_like``/``Tensor.new_*`` inherit their device and are not factories here. The rule is therefore: inside
a model, every factory names its device (``device=x.device``). A tensor built on the CPU and moved
afterwards (``torch.tensor(xs).to(dev)``) also counts as a violation, deliberately: it is an avoidable
host round trip. ``test_recorder_flags_a_factory_without_device`` checks that the recorder really fires
on such a call in a ``zoo`` file, so the tests below can fail.

Where CUDA exists, ``test_cuda_matches_cpu`` also runs every model on the GPU and compares with the CPU.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.overrides import TorchFunctionMode

import zoo
from zoo.decoding import ctc_greedy, ctc_prefix_beam_search
from zoo.models import DOTA, SAR, SARStreamer, align_to_blocks, build_model
from zoo.models.dota import DOTAConfig
from zoo.models.sar import SARConfig

_ZOO_DIR = str(Path(zoo.__file__).resolve().parent)
_FACTORIES = frozenset(
    {
        "arange",
        "as_tensor",
        "empty",
        "eye",
        "full",
        "linspace",
        "ones",
        "rand",
        "randint",
        "randn",
        "range",
        "tensor",
        "zeros",
    }
)


class _FactoryRecorder(TorchFunctionMode):
    """Records ``(factory, file:line)`` of factory calls from ``zoo`` sources without an explicit device."""

    def __init__(self) -> None:
        super().__init__()
        self.violations: list[str] = []
        self.seen = 0

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in _FACTORIES:
            caller = sys._getframe(1)
            path = str(Path(caller.f_code.co_filename).resolve())
            if path.startswith(_ZOO_DIR):
                self.seen += 1
                if kwargs.get("device") is None:
                    self.violations.append(f"torch.{name} at {path}:{caller.f_lineno}")
        return func(*args, **kwargs)


def _violations(fn: Callable[[], object]) -> list[str]:
    with _FactoryRecorder() as rec:
        fn()
    return sorted(set(rec.violations))


def _sar(sar: bool = True) -> SAR:
    cfg = SARConfig(
        n_mels=8,
        stack=2,
        d_model=32,
        num_heads=4,
        num_layers=2,
        conv_kernel=3,
        block=4,
        past=3,
        lookahead=2,
        lm_layers=1 if sar else 0,
        vocab_size=8,
        sar=sar,
        dropout=0.0,
    )
    return SAR(cfg)


def _dota() -> DOTA:
    cfg = DOTAConfig(
        n_mels=8,
        stack=2,
        d_model=32,
        num_layers=2,
        num_heads=4,
        emb_dim=16,
        vocab_size=9,
        max_audio=64,
        max_text=16,
        dropout=0.0,
    )
    return DOTA(cfg)


def _batch() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 40, 8, generator=g)
    feat_lens = torch.tensor([40, 29])
    tokens = torch.randint(1, 8, (2, 5), generator=g)
    token_lens = torch.tensor([5, 3])
    return feats, feat_lens, tokens, token_lens


def test_recorder_flags_a_factory_without_device() -> None:
    # code compiled with a zoo file name stands for a model line; the recorder must flag exactly one call
    code = compile("torch.zeros(3)\ntorch.zeros(3, device=torch.device('cpu'))", _ZOO_DIR + "/_x.py", "exec")
    found = _violations(lambda: exec(code, {"torch": torch}))
    assert found == [f"torch.zeros at {_ZOO_DIR}/_x.py:1"]
    # calls from outside zoo (tests, torch internals) are ignored
    assert _violations(lambda: torch.zeros(3)) == []


@pytest.mark.parametrize("sar", [True, False])
def test_sar_creates_tensors_on_the_input_device(sar: bool) -> None:
    torch.manual_seed(0)
    m = _sar(sar)
    feats, feat_lens, tokens, token_lens = _batch()

    def run() -> None:
        m.train()
        m(feats, feat_lens, tokens, token_lens).loss.backward()
        m(feats, feat_lens)
        m.transcribe(feats, feat_lens, fix_boundaries=True)
        m.transcribe(feats, feat_lens, fix_boundaries=False)

    assert _violations(run) == []


def test_sar_streamer_creates_tensors_on_the_model_device() -> None:
    torch.manual_seed(0)
    m = _sar().eval()
    feats, feat_lens, _, _ = _batch()
    import torchaudio

    mel = torchaudio.transforms.MelSpectrogram(16000, n_fft=400, hop_length=160, n_mels=8)

    def features(w: torch.Tensor) -> torch.Tensor:
        return mel(w).clamp_min(1e-6).log().T

    def run() -> None:
        s = SARStreamer(m)
        for i in range(0, int(feat_lens[1]), 7):
            s.push_features(feats[1, i : min(i + 7, int(feat_lens[1]))])
        s.finish()
        a = SARStreamer(m, features)
        wave = torch.randn(4000, generator=torch.Generator().manual_seed(1))
        for i in range(0, 4000, 1234):
            a.push_audio(wave[i : i + 1234])
        a.finish()

    assert _violations(run) == []


def test_align_to_blocks_creates_tensors_on_the_input_device() -> None:
    logp = torch.randn(12, 5, generator=torch.Generator().manual_seed(0)).log_softmax(-1)

    def run() -> None:
        align_to_blocks(logp, torch.tensor([1, 2, 3]), 4)  # forced alignment
        align_to_blocks(logp[:2], torch.tensor([1, 2, 3]), 4)  # too few frames: uniform fallback
        align_to_blocks(logp, torch.zeros(0, dtype=torch.long), 4)  # no labels

    assert _violations(run) == []


def test_dota_creates_tensors_on_the_input_device() -> None:
    torch.manual_seed(0)
    m = _dota()
    feats, feat_lens, tokens, token_lens = _batch()

    def run() -> None:
        m.train()
        m(feats, feat_lens, tokens, token_lens).loss.backward()
        m(feats, feat_lens)
        m.transcribe(feats, feat_lens, max_len=4)
        m.transcribe(feats, feat_lens, beam_size=3, max_len=4)

    assert _violations(run) == []


def test_ctc_decoding_creates_tensors_on_the_input_device() -> None:
    logp = torch.randn(2, 6, 4, generator=torch.Generator().manual_seed(0)).log_softmax(-1)

    def run() -> None:
        ctc_greedy(logp)
        ctc_prefix_beam_search(logp, beam_size=3)

    assert _violations(run) == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["sar", "sar-ctc", "dota"])
def test_cuda_matches_cpu(name: str) -> None:
    """On a GPU: loss within 1e-4 (relative) of the CPU's, decoding runs, streaming equals offline."""
    torch.manual_seed(0)
    cpu = build_model(name, "tiny", vocab_size=32).eval()
    gpu = build_model(name, "tiny", vocab_size=32).eval()
    gpu.load_state_dict(cpu.state_dict())
    gpu = gpu.cuda()
    g = torch.Generator().manual_seed(5)
    args = (
        torch.randn(2, 120, 80, generator=g),
        torch.tensor([120, 90]),
        torch.randint(1, 30, (2, 8), generator=g),
        torch.tensor([8, 5]),
    )
    dev = tuple(a.cuda() for a in args)
    l_cpu, l_gpu = float(cpu(*args).loss.detach()), float(gpu(*dev).loss.detach())
    assert abs(l_gpu - l_cpu) <= 1e-4 * abs(l_cpu)
    hyps = gpu.transcribe(dev[0], dev[1])
    assert len(hyps) == 2 and all(isinstance(h, list) for h in hyps)
    if name == "dota":
        assert len(gpu.transcribe(dev[0], dev[1], beam_size=2, max_len=4)) == 2
    else:
        s = SARStreamer(gpu)
        s.push_features(args[0][1, :90])  # CPU frames are moved to the model's device
        assert s.finish() == hyps[1]
