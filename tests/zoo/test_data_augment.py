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
