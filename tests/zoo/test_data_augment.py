"""Perturbations and channels measured against their definitions."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.data import augment as A

SR = 16000


def sine(f: float, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * f * t)).astype(np.float32)


def peak_freq(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * SR / len(x))


def test_add_noise_hits_the_snr() -> None:
    x = sine(440)
    for snr in (0.0, 10.0, 25.0):
        for color in ("white", "pink"):
            y = A.add_noise(x, snr, np.random.default_rng(0), color)
            noise = y - x
            measured = 10 * np.log10(
                np.sum(x.astype(np.float64) ** 2) / np.sum(noise.astype(np.float64) ** 2)
            )
            assert measured == pytest.approx(snr, abs=0.05)


def test_pink_noise_spectrum_falls_3db_per_octave() -> None:
    z = A.colored_noise(2**16, np.random.default_rng(0), "pink")
    p = np.abs(np.fft.rfft(z)) ** 2
    f = np.fft.rfftfreq(len(z), 1 / SR)
    band = lambda lo: p[(f >= lo) & (f < 2 * lo)].mean()  # noqa: E731
    assert 10 * np.log10(band(250) / band(500)) == pytest.approx(3.0, abs=0.6)


def test_band_limit_passes_voice_band_only() -> None:
    gain = lambda f: A.rms_db(A.band_limit(sine(f), SR)[4000:]) - A.rms_db(sine(f)[4000:])  # noqa: E731
    assert abs(gain(1000)) < 1.0
    assert gain(80) < -20 and gain(7000) < -20


def test_speed_perturb_scales_duration_and_pitch() -> None:
    x = sine(500)
    for factor in (0.9, 1.1):
        y = A.speed_perturb(x, factor, SR)
        assert len(y) == pytest.approx(len(x) / factor, abs=2)
        assert peak_freq(y) == pytest.approx(500 * factor, rel=0.01)


def test_vtlp_moves_spectral_peaks_keeps_duration() -> None:
    x = sine(1000)
    y = A.vtlp(x, 1.1, SR)
    assert len(y) == len(x)
    assert peak_freq(y[2000:-2000]) == pytest.approx(1100, rel=0.02)
    assert np.array_equal(A.vtlp(x, 1.0, SR), x)


def test_room_impulse_response_decays_60db_in_rt60() -> None:
    rt60 = 0.4
    h = A.room_impulse_response(rt60, SR, np.random.default_rng(0)).astype(np.float64)
    assert np.sum(h**2) == pytest.approx(1.0, rel=1e-5)
    # Schroeder backward integration of the tail: slope of -60 dB per rt60
    tail = h.copy()
    tail[0] = 0.0
    edc = 10 * np.log10(np.cumsum(tail[::-1] ** 2)[::-1] + 1e-30)
    t = np.arange(len(h)) / SR
    sel = (edc - edc[1] <= -5) & (edc - edc[1] >= -25)
    slope = np.polyfit(t[sel], edc[sel], 1)[0]
    assert -60 / slope == pytest.approx(rt60, rel=0.15)


def test_reverb_keeps_length_and_rms() -> None:
    x = sine(300)
    y = A.reverberate(x, 0.3, SR, np.random.default_rng(1))
    assert len(y) == len(x) and A.rms_db(y) == pytest.approx(A.rms_db(x), abs=1e-3)


def test_noise_floor_replaces_digital_silence() -> None:
    x = A.pad(np.zeros(0, np.float32), 0.5, 0.5, SR)
    y = A.noise_floor(x, -60.0, np.random.default_rng(0))
    assert A.rms_db(y) == pytest.approx(-60.0, abs=0.2)
    assert np.count_nonzero(y == 0) == 0


def test_gain_never_clips() -> None:
    x = sine(200, amp=0.5)
    assert A.rms_db(A.apply_gain(x, -6.0)) == pytest.approx(A.rms_db(x) - 6.0, abs=1e-3)
    assert np.max(np.abs(A.apply_gain(x, 20.0))) == pytest.approx(0.99, abs=1e-6)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="speed factor"):
        A.speed_perturb(sine(100), 3.0, SR)
    with pytest.raises(ValueError, match="unknown channel 'radio'"):
        A.apply_channel(sine(100), "radio", {}, SR, np.random.default_rng(0))
    with pytest.raises(ValueError, match="1-D"):
        A.add_noise(np.zeros((2, 10)), 10.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="noise color"):
        A.colored_noise(10, np.random.default_rng(0), "brown")


# -- torch.Generator paths and the Augment pipeline ----------------------------------------------------

import torch  # noqa: E402

from tests.bilevel._asserts import BadInput, assert_rejects  # noqa: E402


def faded_sine(f: float, seconds: float = 2.0, amp: float = 0.5) -> np.ndarray:
    """A tone that starts after 0.1 s of silence with a 20 ms fade-in (as recorded speech starts)."""
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.clip((t - 0.1) / 0.02, 0, 1) * np.sin(2 * np.pi * f * t)).astype(np.float32)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_numpy_and_torch_generators_share_one_formula() -> None:
    # same normal draws -> same noise: the torch path is the numpy formula fed by torch's RNG
    n = 4096
    z = A.colored_noise(n, gen(3), "pink")
    # float32 draws (n = 4096 is a fast FFT length, so nothing more is drawn), float64 reference
    raw = torch.randn(n, generator=gen(3), dtype=torch.float32).numpy().astype(np.float64)
    f = np.fft.rfft(raw)
    f[1:] /= np.sqrt(np.arange(1, len(f)))
    ref = np.fft.irfft(f, n)
    np.testing.assert_allclose(z, ref / np.sqrt(np.mean(ref**2)), rtol=0, atol=2e-5)
    with pytest.raises(TypeError, match="rng must be"):
        A.colored_noise(8, 0)  # type: ignore[arg-type]


@pytest.mark.parametrize("semitones", [-3.0, -1.0, 0.5, 2.0])
def test_pitch_shift_moves_frequency_keeps_length_and_level(semitones: float) -> None:
    x = faded_sine(517.0)
    y = A.pitch_shift(x, semitones, SR)
    assert len(y) == len(x)
    # the ratio is rounded to a multiple of 1/320 (<= 0.03 semitone); FFT bins are 0.5 Hz here
    assert peak_freq(y[4000:-2000]) == pytest.approx(517.0 * 2 ** (semitones / 12), rel=2.5e-3)
    assert A.rms_db(y[4000:-2000]) == pytest.approx(A.rms_db(x[4000:-2000]), abs=0.05)
    assert np.array_equal(A.pitch_shift(x, 0.0, SR), x)


def test_lowpass_leaves_no_energy_above_the_cutoff() -> None:
    z = torch.randn(2 * SR, generator=gen(0)).numpy()
    w = np.hanning(len(z))
    f = np.fft.rfftfreq(len(z), 1 / SR)
    for cut in (3400.0, 5000.0, 7000.0):
        y = A.lowpass(z, SR, cut)
        assert len(y) == len(z)
        pz, py = np.abs(np.fft.rfft(z * w)) ** 2, np.abs(np.fft.rfft(y * w)) ** 2
        stop = 10 * np.log10(py[f >= cut].sum() / pz[f >= cut].sum())
        passband = 10 * np.log10(py[f < 0.9 * cut].sum() / pz[f < 0.9 * cut].sum())
        assert stop < -70.0  # design: 80 dB; the Kaiser formula gives ~79 dB at the edge
        assert abs(passband) < 0.01
        # the frequency response of the taps themselves (dense grid): stop band and pass-band ripple
        h = np.abs(np.fft.rfft(A.lowpass_fir(SR, cut), 1 << 16)) ** 2
        fh = np.fft.rfftfreq(1 << 16, 1 / SR)
        assert 10 * np.log10(h[fh >= cut].max()) < -75.0
        assert np.abs(10 * np.log10(h[fh < 0.9 * cut])).max() < 0.01
    # zero delay: a low tone passes unchanged in phase
    x = sine(200)
    np.testing.assert_allclose(A.lowpass(x, SR, 4000.0)[1000:-1000], x[1000:-1000], atol=1e-3)


def test_reverberate_with_torch_generator_is_a_convolution() -> None:
    x = sine(300, 0.5)
    y = A.reverberate(x, 0.3, SR, gen(5))
    h = A.room_impulse_response(0.3, SR, gen(5)).astype(np.float64)
    ref = np.convolve(x.astype(np.float64), h)[: len(x)]
    ref *= np.sqrt(np.mean(x.astype(np.float64) ** 2) / np.mean(ref**2))
    np.testing.assert_allclose(y, ref, atol=1e-5)


ROBUST = A.AUGMENT_PRESETS["robust"]


def test_augment_none_is_identity_and_draws_nothing() -> None:
    x = sine(440)
    g = gen(0)
    before = g.get_state()
    y, params = A.Augment()(x, SR, g)
    assert params == {} and np.array_equal(y.numpy(), x)
    assert torch.equal(g.get_state(), before)


def test_augment_is_deterministic_in_the_generator() -> None:
    x = faded_sine(300.0, 1.0)
    runs = [[ROBUST(x, SR, g) for _ in range(6)] for g in (gen(7), gen(7))]
    for (ya, pa), (yb, pb) in zip(*runs, strict=True):
        assert pa == pb and torch.equal(ya, yb)  # same path, same generator state: bit-exact
    g8 = gen(8)
    other = [ROBUST(x, SR, g8) for _ in range(6)]
    assert [p for _, p in other] != [p for _, p in runs[0]]  # another seed, other draws


def test_augment_draws_follow_the_config() -> None:
    g = gen(1)
    draws = [ROBUST.draw(g) for _ in range(400)]
    assert {d["speed"] for d in draws} == {0.9, 1.0, 1.1}
    for key, prob, (lo, hi) in (
        ("pitch_semitones", 0.5, (-2.0, 2.0)),
        ("rt60", 0.3, (0.2, 0.8)),
        ("snr_db", 0.5, (5.0, 30.0)),
        ("lowpass_hz", 0.3, (3400.0, 7000.0)),
    ):
        vals = [d[key] for d in draws if key in d]
        assert len(vals) / len(draws) == pytest.approx(prob, abs=0.08)  # binomial, > 3 sigma
        assert all(lo <= v <= hi for v in vals)
    assert {d["noise_color"] for d in draws if "snr_db" in d} == {"white", "pink"}


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_augment_speed_changes_length_by_the_factor(factor: float) -> None:
    x = sine(500)
    y, p = A.Augment(speeds=(factor,))(x, SR, gen(0))
    assert p == {"speed": factor}
    assert len(y) == pytest.approx(len(x) / factor, abs=2)
    assert peak_freq(y.numpy()) == pytest.approx(500 * factor, rel=0.01)


@pytest.mark.parametrize("snr", [0.0, 12.5, 30.0])
def test_augment_noise_hits_the_drawn_snr(snr: float) -> None:
    x = sine(440)
    aug = A.Augment(snr_db=(snr, snr), noise_prob=1.0, noise_colors=("pink",))
    y, p = aug(x, SR, gen(2))
    assert p["snr_db"] == snr and p["noise_color"] == "pink"
    noise = y.numpy().astype(np.float64) - x
    measured = 10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum(noise**2))
    assert measured == pytest.approx(snr, abs=0.05)


def test_augment_lowpass_and_reverb_through_the_pipeline() -> None:
    z = torch.randn(SR, generator=gen(4)).numpy() * 0.1
    y, p = A.Augment(lowpass_hz=(4000.0, 4000.0), band_prob=1.0)(z, SR, gen(0))
    f = np.fft.rfftfreq(len(z), 1 / SR)
    w = np.hanning(len(z))
    py, pz = np.abs(np.fft.rfft(y.numpy() * w)) ** 2, np.abs(np.fft.rfft(z * w)) ** 2
    assert p == {"lowpass_hz": 4000.0} and 10 * np.log10(py[f >= 4000].sum() / pz[f >= 4000].sum()) < -70
    x = sine(300)
    y, p = A.Augment(rt60=(0.4, 0.4), reverb_prob=1.0)(x, SR, gen(0))
    assert p == {"rt60": 0.4} and len(y) == len(x)
    assert A.rms_db(y.numpy()) == pytest.approx(A.rms_db(x), abs=1e-3)


def test_augment_batch_keeps_lengths_and_padding() -> None:
    lens = [16000, 9000, 12000]
    wavs = torch.zeros(3, max(lens))
    for b, n in enumerate(lens):
        wavs[b, :n] = torch.from_numpy(faded_sine(200.0 + 100 * b, n / SR))
    out, new_lens, params = ROBUST.batch(wavs, lens, SR, gen(11))
    g = gen(11)
    for b, n in enumerate(lens):
        y, p = ROBUST(wavs[b, :n], SR, g)  # row b == the per-utterance call, in row order
        assert p == params[b] and int(new_lens[b]) == len(y)
        assert len(y) == pytest.approx(n / p["speed"], abs=2)
        assert torch.equal(out[b, : len(y)], y) and not out[b, len(y) :].any()
    assert out.shape == (3, int(new_lens.max()))


AUG_CASES = [
    BadInput("speed out of range", lambda: A.Augment(speeds=(3.0,)), ValueError, "speeds"),
    BadInput("speeds not a tuple", lambda: A.Augment(speeds=0.9), TypeError, "speeds"),  # type: ignore[arg-type]
    BadInput("snr pair reversed", lambda: A.Augment(snr_db=(30.0, 5.0)), ValueError, "snr_db"),
    BadInput("snr not a pair", lambda: A.Augment(snr_db=5.0), TypeError, "snr_db"),  # type: ignore[arg-type]
    BadInput("snr nan", lambda: A.Augment(snr_db=(float("nan"), 5.0)), ValueError, "snr_db"),
    BadInput("rt60 too long", lambda: A.Augment(rt60=(0.1, 5.0)), ValueError, "rt60"),
    BadInput("pitch too far", lambda: A.Augment(pitch_semitones=(-24.0, 0.0)), ValueError, "pitch_semitones"),
    BadInput("probability > 1", lambda: A.Augment(noise_prob=1.5), ValueError, "noise_prob"),
    BadInput("unknown colour", lambda: A.Augment(noise_colors=("brown",)), ValueError, "noise_colors"),
    BadInput("numpy generator", lambda: ROBUST.draw(np.random.default_rng(0)), TypeError, "generator"),  # type: ignore[arg-type]
    BadInput("batch not 2-D", lambda: ROBUST.batch(torch.zeros(5), [5], SR, gen()), ValueError, "wavs"),
    BadInput(
        "batch lengths", lambda: ROBUST.batch(torch.zeros(2, 5), [5, 9], SR, gen()), ValueError, "lengths"
    ),
    BadInput("pitch_shift range", lambda: A.pitch_shift(sine(100), 13.0, SR), ValueError, "pitch shift"),
    BadInput("lowpass above Nyquist", lambda: A.lowpass(sine(100), SR, 9000.0), ValueError, "cutoff_hz"),
    BadInput("lowpass attenuation", lambda: A.lowpass_fir(SR, 1000.0, 10.0), ValueError, "attenuation_db"),
]


@pytest.mark.parametrize("case", AUG_CASES, ids=lambda c: c.name)
def test_augment_rejects_bad_input(case: BadInput) -> None:
    assert_rejects(case)
