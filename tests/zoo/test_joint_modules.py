"""Joint STT + TTS modules: durations, masking, streams, heads, refinement, MCD, bad input, state_dict."""

from __future__ import annotations

import math

import pytest
import torch

from tests.bilevel._asserts import BadInput, assert_rejects
from zoo.data import CharTokenizer, LogMel, read_audio
from zoo.models.joint import (
    JointSTTTTS,
    MelInverter,
    alignment_durations,
    dct_matrix,
    encode_text,
    interleave_blanks,
    joint_config,
    length_regulate,
    mask_text,
    mel_cepstral_distortion,
    path_to_alignment,
    refine_stt,
    refine_tts,
    span_mask,
    write_wav,
)

torch.set_num_threads(1)


def micro(**kw) -> JointSTTTTS:
    torch.manual_seed(0)
    return JointSTTTTS(joint_config("micro", vocab_size=7, **kw)).eval()


def test_interleave_and_length_regulate_sum_to_frames():
    s, n = interleave_blanks(torch.tensor([[2, 3, 4], [5, 6, 0]]), torch.tensor([3, 2]))
    assert s.tolist() == [[0, 2, 0, 3, 0, 4, 0], [0, 5, 0, 6, 0, 0, 0]] and n.tolist() == [7, 5]
    x = torch.arange(14.0).reshape(2, 7, 1)
    d = torch.tensor([[1, 2, 0, 1, 0, 1, 1], [0, 3, 1, 1, 2, 0, 0]])
    y, T = length_regulate(x, d, n, frames=torch.tensor([6, 7]))
    assert T.tolist() == [6, 7]
    assert y[0, :6, 0].tolist() == [0, 1, 1, 3, 5, 6] and float(y[0, 6].abs().sum()) == 0.0
    assert y[1, :, 0].tolist() == [8, 8, 8, 9, 10, 11, 11]


def test_durations_must_sum_to_frames():
    with pytest.raises(ValueError, match="durations must sum to the frame count"):
        length_regulate(torch.zeros(1, 3, 2), torch.tensor([[1, 1, 1]]), torch.tensor([3]), torch.tensor([4]))


def test_forced_alignment_recovers_a_known_alignment():
    # frames: ∅ ∅ a a ∅ b c c ∅ ∅  -> states ∅ a ∅ b ∅ c ∅ with durations 2 2 1 1 0 2 2
    path = [0, 0, 2, 2, 0, 3, 4, 4, 0, 0]
    lp = torch.full((10, 5), math.log(0.01))
    lp[torch.arange(10), torch.tensor(path)] = math.log(0.96)
    dur = alignment_durations(lp, 10, [2, 3, 4])
    assert dur.tolist() == [2, 2, 1, 1, 0, 2, 2] and int(dur.sum()) == 10
    assert path_to_alignment(path) == ([0, 2, 0, 3, 0, 4, 0], [2, 2, 1, 1, 0, 2, 2])
    with pytest.raises(ValueError, match="length"):
        alignment_durations(lp, 2, [2, 3, 4])


def test_mask_text_share_is_exact_and_seeded():
    tok = torch.randint(2, 7, (4, 20), generator=torch.Generator().manual_seed(1))
    lens = torch.tensor([20, 10, 7, 1])
    a, ma = mask_text(tok, lens, 0.3, 7, torch.Generator().manual_seed(3))
    b, mb = mask_text(tok, lens, 0.3, 7, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and torch.equal(ma, mb)
    assert ma.sum(1).tolist() == [6, 3, 2, 0]
    pad = torch.arange(20)[None] >= lens[:, None]
    assert not bool((ma & pad).any()) and bool((a[ma] == 7).all())


def test_span_mask_covers_spans_within_lengths():
    m = span_mask(torch.tensor([50, 30]), 50, 0.2, 4, torch.Generator().manual_seed(0))
    assert not bool(m[1, 30:].any())
    assert 0 < int(m.sum()) < 80


def test_missing_modality_uses_the_mask_stream():
    m = micro()
    feats = torch.randn(2, 12, 8)
    lens = torch.tensor([12, 12])
    h1 = m(feats=feats, feat_lens=lens).hidden
    with torch.no_grad():
        m.text_missing.add_(torch.randn(16))
    h2 = m(feats=feats, feat_lens=lens).hidden
    assert (h1 - h2).abs().max() > 1e-3  # the absent text stream is the learned MASK vector
    tok, tl = torch.tensor([[2, 3]]), torch.tensor([2])
    d = torch.tensor([[1, 2, 0, 2, 1]])
    o1 = m(tokens=tok, token_lens=tl, durations=d)
    with torch.no_grad():
        m.speech_missing.add_(torch.randn(16))
    o2 = m(tokens=tok, token_lens=tl, durations=d)
    assert (o1.hidden - o2.hidden).abs().max() > 1e-3


def test_head_shapes():
    m = micro(postnet_layers=2)
    o = m(
        tokens=torch.tensor([[2, 3, 4]]),
        token_lens=torch.tensor([3]),
        durations=torch.tensor([[1, 1, 0, 2, 1, 1, 0]]),
        feats=torch.randn(1, 13, 8),
        feat_lens=torch.tensor([13]),
    )
    assert tuple(o.ctc_logits.shape) == (1, 6, 7)
    assert tuple(o.mel.shape) == (1, 12, 8) and tuple(o.mel_post.shape) == (1, 12, 8)
    assert tuple(o.log_durations.shape) == (1, 7)
    stt = JointSTTTTS(joint_config("micro", vocab_size=7, tasks=("stt",)))
    assert stt(feats=torch.randn(1, 8, 8), feat_lens=torch.tensor([8])).mel is None


def test_refinement_with_zero_steps_is_plain_decoding():
    m = micro()
    feats, lens = torch.randn(3, 20, 8), torch.tensor([20, 16, 9])
    ids, outs = refine_stt(m, feats, lens, steps=0)
    assert ids == m.transcribe(feats, lens) and len(outs) == 1
    tok, tl = torch.tensor([[2, 3, 4], [5, 6, 0]]), torch.tensor([3, 2])
    mel, _, outs = refine_tts(m, tok, tl, steps=0)
    assert torch.equal(mel, m(tokens=tok, token_lens=tl).mel_post)
    ids3, outs3 = refine_stt(m, feats, lens, steps=3, threshold=0.2)
    assert len(outs3) == 4 and len(ids3) == 3
    mel4, _, _ = refine_tts(m, tok, tl, steps=4, generator=torch.Generator().manual_seed(0))
    assert mel4.shape == mel.shape and bool(torch.isfinite(mel4).all())


def test_gradient_matches_finite_differences():
    torch.manual_seed(0)
    m = JointSTTTTS(joint_config("micro", vocab_size=7)).double()
    tok, tl = torch.tensor([[2, 3]]), torch.tensor([2])
    d = torch.tensor([[1, 1, 1, 1, 0]])
    feats = torch.randn(1, 8, 8, dtype=torch.float64)
    fl = torch.tensor([8])

    def loss() -> torch.Tensor:
        o = m(tokens=tok, token_lens=tl, durations=d, feats=feats, feat_lens=fl)
        return m.ctc(o, tok, tl) + m.mel_loss(o, feats) + m.duration_loss(o, d)

    p = m.tts_head.weight
    loss().backward()
    g = p.grad.clone()
    eps = 1e-6
    for idx in [(0, 0), (3, 5), (10, 15)]:
        with torch.no_grad():
            p[idx] += eps
            up = float(loss())
            p[idx] -= 2 * eps
            dn = float(loss())
            p[idx] += eps
        assert abs((up - dn) / (2 * eps) - float(g[idx])) < 1e-5 * max(1.0, abs(float(g[idx])))


def test_mel_cepstral_distortion_closed_form():
    F = 10
    x = torch.randn(6, F, generator=torch.Generator().manual_seed(0))
    assert mel_cepstral_distortion(x + 2.5, x) == pytest.approx(0.0, abs=1e-5)
    a = 0.3
    # a log-power change a·(orthonormal DCT row 3) moves c_3 alone, by (a/2)/sqrt(2F)
    y = x + a * dct_matrix(F)[3].float()
    expected = 10 / math.log(10) * math.sqrt(2) * (a / 2) / math.sqrt(2 * F)
    assert mel_cepstral_distortion(y, x) == pytest.approx(expected, rel=1e-5)


TOK = CharTokenizer(list("abc "))


CASES = [
    BadInput("oov text", lambda: encode_text(TOK, "abz"), ValueError, "text.*outside the vocabulary"),
    BadInput("empty text", lambda: encode_text(TOK, ""), ValueError, "text must not be empty"),
    BadInput(
        "empty token_lens",
        lambda: micro()(tokens=torch.tensor([[2]]), token_lens=torch.tensor([0])),
        ValueError,
        "token_lens",
    ),
    BadInput(
        "tokens out of vocab",
        lambda: micro()(tokens=torch.tensor([[9]]), token_lens=torch.tensor([1])),
        ValueError,
        "tokens",
    ),
    BadInput(
        "durations not summing",
        lambda: micro()(
            tokens=torch.tensor([[2]]),
            token_lens=torch.tensor([1]),
            durations=torch.tensor([[1, 1, 1]]),
            feats=torch.zeros(1, 8, 8),
            feat_lens=torch.tensor([8]),
        ),
        ValueError,
        "durations must sum",
    ),
    BadInput("neither modality", lambda: micro()(), ValueError, "neither"),
    BadInput(
        "bad feats dim",
        lambda: micro()(feats=torch.zeros(1, 8, 5), feat_lens=torch.tensor([8])),
        ValueError,
        "feats",
    ),
    BadInput(
        "negative steps",
        lambda: refine_stt(micro(), torch.zeros(1, 8, 8), torch.tensor([8]), steps=-1),
        ValueError,
        "steps",
    ),
    BadInput("unknown task", lambda: joint_config("micro", tasks=("asr",)), ValueError, "tasks"),
    BadInput(
        "mask share",
        lambda: mask_text(torch.ones(1, 2, dtype=torch.long), torch.tensor([2]), 1.5, 9, torch.Generator()),
        ValueError,
        "share",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_rejects_bad_input(case):
    assert_rejects(case)


def test_state_dict_round_trip():
    a = micro(postnet_layers=2)
    b = JointSTTTTS(joint_config("micro", vocab_size=7, postnet_layers=2)).eval()
    b.load_state_dict(a.state_dict())
    feats, lens = torch.randn(2, 12, 8), torch.tensor([12, 8])
    assert torch.equal(a(feats=feats, feat_lens=lens).mel_post, b(feats=feats, feat_lens=lens).mel_post)


def test_griffin_lim_keeps_the_pitch_and_writes_a_wav(tmp_path):
    sr, f0 = 16000, 1000.0
    t = torch.arange(8000) / sr
    wav = 0.5 * torch.sin(2 * math.pi * f0 * t)
    mel = LogMel(n_mels=80)(wav)
    out = MelInverter(n_mels=80, n_iter=16)(mel)
    spec = torch.fft.rfft(out * torch.hann_window(out.numel()))
    peak = float(spec.abs().argmax()) * sr / out.numel()
    assert abs(peak - f0) < 60.0  # within the mel band around 1 kHz (≈ 60 Hz wide there)
    path = write_wav(tmp_path / "x.wav", out)
    back = read_audio(path)
    assert back.sample_rate == sr and back.wav.shape[0] == out.numel()


def test_predicted_durations_let_ctc_read_the_text():
    m = micro()
    states, lens = interleave_blanks(torch.tensor([[2, 2, 3]]), torch.tensor([3]))
    d = m.predict_durations(torch.full((1, 7), -5.0), states, lens)
    assert d.tolist() == [[0, 1, 1, 1, 0, 1, 0]]  # every character and the blank between the two 2s
