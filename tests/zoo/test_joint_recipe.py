"""The joint STT + TTS recipe's batches and step function on synthetic items (no corpus needed)."""

from __future__ import annotations

import pytest
import torch

from zoo.models.joint import JointSTTTTS, joint_config
from zoo.recipes.joint_stt_tts import JointRun, JointStep, MixedBatches, collate_joint
from zoo.training import Batches, Budget, Trainer, TrainState

torch.set_num_threads(1)


def _items(n: int, seed: int) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        u = int(torch.randint(2, 5, (1,), generator=g))
        frames = 2 * u + 3
        d = torch.ones(2 * u + 1, dtype=torch.long)
        d[-1] += frames - int(d.sum())
        f = torch.randn(frames * 2, 8, generator=g)
        out.append(
            {
                "feats": f,
                "asr_feats": f,
                "tokens": torch.randint(2, 7, (u,), generator=g),
                "text": "x",
                "durations": d,
            }
        )
    return out


def _state(seed: int = 0) -> TrainState:
    torch.manual_seed(seed)
    model = JointSTTTTS(joint_config("micro", vocab_size=7))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sources = {
        k: Batches.shuffled(_items(6, i), 2, collate_joint, seed=i)
        for i, k in enumerate(("paired", "speech", "text"))
    }
    return TrainState(
        {"model": model},
        {"model": opt},
        MixedBatches(sources, {"paired": 0.4, "speech": 0.3, "text": 0.3}, seed),
        generator=torch.Generator().manual_seed(seed),
    )


def test_every_share_gives_a_finite_loss():
    st = _state()
    step = JointStep(JointRun(span_p=0.3, span=2))
    seen = set()
    for i in range(12):
        b = st.data.batch(i)
        seen.add(b["mode"])
        row = step(st, b)
        assert torch.isfinite(torch.tensor(row["loss"]))
    assert seen == {"paired", "speech", "text"}


def test_resume_is_exact():
    run = JointRun(span_p=0.3, span=2)
    a = _state()
    Trainer(a, JointStep(run), Budget(steps=6), progress=False).run()
    b = _state()
    Trainer(b, JointStep(run), Budget(steps=3), progress=False).run()
    saved = b.state_dict()
    c = _state()
    c.load_state_dict(saved)
    Trainer(c, JointStep(run), Budget(steps=6), progress=False).run()
    for p, q in zip(a.model.parameters(), c.model.parameters()):
        assert torch.equal(p, q)


def test_run_config_rejects_bad_shares():
    with pytest.raises(ValueError, match="shares"):
        JointRun(shares=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="methods"):
        JointRun(methods=("both",))


def _claim_data(joint_wer: list[float]) -> dict:
    per = {
        "joint": [
            {"stt_wer": w, "mel_l1": 0.5, "mcd_db": 8.0, "duration_mae_frames": 0.4, "asr_wer": 0.5}
            for w in joint_wer
        ],
        "paired-only": [{"stt_wer": 0.6, "mel_l1": 0.6} for _ in joint_wer],
        "stt-only": [{"stt_wer": 0.6} for _ in joint_wer],
        "tts-only": [
            {"mel_l1": 0.52, "mcd_db": 8.1, "duration_mae_frames": 0.41, "asr_wer": 0.52} for _ in joint_wer
        ],
    }
    return {
        "per_seed": per,
        "lr_search_dev": {},
        "threshold": 0.9,
        "threshold_search_dev_wer_K2": {},
        "refinement": {"stt_wer": [0.5, 0.45, 0.44, 0.44], "mel_l1": [0.6, 0.55, 0.55, 0.56]},
        "judge_dev_wer": 0.3,
        "n_test": 10,
        "shares": {},
        "budget": {"corpus": "x", "model": "mini", "steps": 1, "seeds": 3, "batch": 1},
    }


def test_claim_verdicts_follow_the_intervals():
    from benchmarks.claims import joint_stt_tts as c

    assert c.stt_verdict(_claim_data([0.4, 0.42, 0.41])).holds
    assert not c.stt_verdict(_claim_data([0.7, 0.5, 0.66])).holds
    assert c.tts_verdict(_claim_data([0.4, 0.42, 0.41])).holds
    assert c.unpaired_verdict(_claim_data([0.4, 0.42, 0.41])).holds
    r = c.refine_verdict(_claim_data([0.4]))
    assert r.holds and r.details["stops_helping_after"] == {"stt_wer": 2, "mel_l1": 1}
