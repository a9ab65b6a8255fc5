"""Waveform perturbations and channel simulation (functional; numpy in, numpy out, explicit RNG).

Every function takes a 1-D float32 waveform and returns a new one; random ones take a
``numpy.random.Generator`` so that a corpus is a pure function of its seed. The corpus records each
parameter in the manifest (``Utterance.augment``).

* :func:`speed_perturb` — resampling speed change by a factor (Ko et al., 2015, "Audio augmentation for
  speech recognition"): duration ÷ factor, pitch and formants × factor (``torchaudio.functional.speed``).
* :func:`vtlp` — vocal-tract-length perturbation (Jaitly & Hinton, 2013): the STFT frequency axis is warped
  piecewise linearly, :math:`f' = \\alpha f` below :math:`f_0 = f_{hi} \\min(\\alpha, 1)/\\alpha` and linearly
  to Nyquist above, which moves the formants by :math:`\\alpha` and keeps the bandwidth.
* :func:`add_noise` — white or pink noise at a signal-to-noise ratio (``torchaudio.functional.add_noise``).
* :func:`band_limit` — cascaded biquad high- and low-pass (telephone band 300–3400 Hz by default).
* :func:`reverberate` — convolution with a synthetic room impulse response: a direct path plus
  exponentially decaying Gaussian noise that falls by 60 dB in ``rt60`` seconds (Polack's model),
  ``torchaudio.functional.fftconvolve``.
* :func:`noise_floor` — low-level white noise at a given dBFS, so no sample run is exact digital silence.
* :func:`apply_gain` — gain in dB followed by peak protection (never clips).
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _t(wav: np.ndarray) -> torch.Tensor:
    a = np.asarray(wav, dtype=np.float32)
    if a.ndim != 1:
        raise ValueError(f"waveform must be 1-D, got shape {a.shape}")
    return torch.from_numpy(np.ascontiguousarray(a))


def rms_db(wav: np.ndarray) -> float:
    """Root-mean-square level in dBFS (full scale = 1.0); ``-inf`` for silence."""
    r = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) if len(wav) else 0.0
    return 20 * math.log10(r) if r > 0 else -math.inf


def pad(wav: np.ndarray, start_s: float, end_s: float, sample_rate: int) -> np.ndarray:
    """Zero-pad ``start_s`` seconds before and ``end_s`` after (fill later with :func:`noise_floor`)."""
    if start_s < 0 or end_s < 0:
        raise ValueError(f"padding must be >= 0 s, got start {start_s}, end {end_s}")
    a, b = round(start_s * sample_rate), round(end_s * sample_rate)
    return np.concatenate([np.zeros(a, np.float32), np.asarray(wav, np.float32), np.zeros(b, np.float32)])


def speed_perturb(wav: np.ndarray, factor: float, sample_rate: int) -> np.ndarray:
    """Play ``wav`` ``factor`` times faster (duration ÷ factor, pitch × factor) by resampling."""
    if not 0.5 <= factor <= 2.0:
        raise ValueError(f"speed factor must be in [0.5, 2], got {factor}")
    if factor == 1.0:
        return np.asarray(wav, np.float32)
    import torchaudio.functional as AF

    out, _ = AF.speed(_t(wav)[None], sample_rate, factor)
    return out[0].numpy()


def vtlp(
    wav: np.ndarray, alpha: float, sample_rate: int, f_hi: float = 4800.0, n_fft: int = 512
) -> np.ndarray:
    """Warp the spectral envelope by ``alpha`` (VTLP, Jaitly & Hinton 2013) through the STFT.

    Each output bin :math:`f` takes the magnitude of the input at :math:`w^{-1}(f)` (linear interpolation),
    where :math:`w` is the piecewise-linear warp of the module docstring; its phase advances at the warped
    instantaneous frequency of the nearest input bin (phase vocoder, Flanagan & Golden 1966), so a
    partial at :math:`f` is resynthesised at :math:`w(f)`. The duration is unchanged.
    """
    if not 0.7 <= alpha <= 1.3:
        raise ValueError(f"VTLP alpha must be in [0.7, 1.3], got {alpha}")
    x = _t(wav)
    if alpha == 1.0 or len(x) < n_fft:
        return x.numpy().copy()
    nyq = sample_rate / 2
    hop = n_fft // 4
    win = torch.hann_window(n_fft, dtype=torch.float64)
    spec = torch.stft(x.double(), n_fft, hop, window=win, return_complex=True)  # (F, T)
    nb = spec.shape[0]
    freqs = torch.linspace(0, nyq, nb, dtype=torch.float64)
    f0 = f_hi * min(alpha, 1.0) / alpha
    knee = alpha * f0

    def warp(f: torch.Tensor) -> torch.Tensor:
        return torch.where(f <= f0, alpha * f, knee + (f - f0) * (nyq - knee) / (nyq - f0))

    # inverse warp: source frequency for each target frequency
    src = torch.where(freqs <= knee, freqs / alpha, f0 + (freqs - knee) * (nyq - f0) / (nyq - knee)).clamp(
        0, nyq
    )
    pos = src / nyq * (nb - 1)
    lo = pos.floor().long().clamp(max=nb - 1)
    hi = (lo + 1).clamp(max=nb - 1)
    w = (pos - lo)[:, None]
    mag = spec.abs()
    new_mag = (1 - w) * mag[lo] + w * mag[hi]
    # phase vocoder: instantaneous frequency of the nearest source bin, warped, integrated over frames
    ph = torch.angle(spec)
    omega = 2 * torch.pi * freqs[:, None] * hop / sample_rate
    dphi = torch.diff(ph, dim=1, prepend=ph[:, :1]) - omega
    dphi = torch.remainder(dphi + torch.pi, 2 * torch.pi) - torch.pi
    inst = (omega + dphi) * sample_rate / (2 * torch.pi * hop)  # Hz, (F, T)
    near = pos.round().long().clamp(max=nb - 1)
    inc = 2 * torch.pi * warp(inst[near].clamp(0, nyq)) * hop / sample_rate
    new_ph = ph[near, :1] + torch.cumsum(inc, dim=1) - inc[:, :1]
    out = torch.istft(torch.polar(new_mag, new_ph), n_fft, hop, window=win, length=len(x))
    return out.float().numpy()


def colored_noise(n: int, rng: np.random.Generator, color: str = "white") -> np.ndarray:
    """``n`` samples of unit-RMS white or pink (1/f power) Gaussian noise."""
    if color not in ("white", "pink"):
        raise ValueError(f"noise color must be 'white' or 'pink', got {color!r}")
    z = rng.standard_normal(n)
    if color == "pink" and n > 1:
        f = np.fft.rfft(z)
        scale = np.ones(len(f))
        scale[1:] = 1 / np.sqrt(np.arange(1, len(f)))
        z = np.fft.irfft(f * scale, n)
    r = np.sqrt(np.mean(z**2)) if n else 1.0
    return (z / (r if r > 0 else 1.0)).astype(np.float32)


def add_noise(wav: np.ndarray, snr_db: float, rng: np.random.Generator, color: str = "white") -> np.ndarray:
    """Add ``color`` noise at signal-to-noise ratio ``snr_db`` (signal power over the whole utterance)."""
    import torchaudio.functional as AF

    x = _t(wav)
    noise = torch.from_numpy(colored_noise(len(x), rng, color))
    return AF.add_noise(x[None], noise[None], torch.tensor([float(snr_db)]))[0].numpy()


def band_limit(
    wav: np.ndarray, sample_rate: int, low_hz: float = 300.0, high_hz: float = 3400.0
) -> np.ndarray:
    """Telephone-style band limiting: two cascaded biquad high-passes at ``low_hz``, two low-passes at
    ``high_hz`` (≈ 24 dB/octave skirts)."""
    import torchaudio.functional as AF

    if not 0 < low_hz < high_hz < sample_rate / 2:
        raise ValueError(f"need 0 < low_hz < high_hz < {sample_rate / 2}, got {low_hz}, {high_hz}")
    x = _t(wav)
    for _ in range(2):
        x = AF.highpass_biquad(x, sample_rate, low_hz)
        x = AF.lowpass_biquad(x, sample_rate, high_hz)
    return x.numpy()


def room_impulse_response(rt60: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Synthetic RIR: unit direct path, then Gaussian noise decaying by 60 dB over ``rt60`` s (starting
    2.5 ms later, at −6 dB), ``rt60`` seconds long; unit energy."""
    if not 0.05 <= rt60 <= 2.0:
        raise ValueError(f"rt60 must be in [0.05, 2] s, got {rt60}")
    n = max(2, round(rt60 * sample_rate))
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * 10 ** (-3 * t / rt60) * 0.5
    tail[: round(0.0025 * sample_rate)] = 0.0
    h = tail
    h[0] = 1.0
    return (h / np.sqrt(np.sum(h**2))).astype(np.float32)


def reverberate(wav: np.ndarray, rt60: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Convolve with :func:`room_impulse_response` (length kept; RMS restored to the input's)."""
    import torchaudio.functional as AF

    x = _t(wav)
    h = torch.from_numpy(room_impulse_response(rt60, sample_rate, rng))
    y = AF.fftconvolve(x, h)[: len(x)]
    rx, ry = x.pow(2).mean().sqrt(), y.pow(2).mean().sqrt()
    return (y * (rx / ry if ry > 0 else 1.0)).numpy()


def noise_floor(wav: np.ndarray, level_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add white noise with RMS ``level_db`` dBFS (e.g. −60), replacing exact digital silence."""
    if level_db > -20:
        raise ValueError(f"noise floor must be <= -20 dBFS, got {level_db}")
    x = np.asarray(wav, np.float32)
    return x + colored_noise(len(x), rng) * np.float32(10 ** (level_db / 20))


def apply_gain(wav: np.ndarray, gain_db: float, peak: float = 0.99) -> np.ndarray:
    """Multiply by ``10**(gain_db/20)``; if the peak would exceed ``peak``, scale down to ``peak`` instead."""
    x = np.asarray(wav, np.float32) * np.float32(10 ** (gain_db / 20))
    m = float(np.max(np.abs(x))) if len(x) else 0.0
    return x * np.float32(peak / m) if m > peak else x


def normalize_peak(wav: np.ndarray, peak: float = 0.5) -> np.ndarray:
    """Scale so that the largest magnitude is ``peak`` (silence unchanged)."""
    x = np.asarray(wav, np.float32)
    m = float(np.max(np.abs(x))) if len(x) else 0.0
    return x * np.float32(peak / m) if m > 0 else x


def apply_channel(
    wav: np.ndarray, channel: str, params: dict[str, float | str], sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """Apply the corpus channel ``channel`` (``"clean"``, ``"noise"``, ``"telephone"`` or ``"reverb"``)
    with its ``params`` (``snr_db`` and ``noise_color``; ``low_hz``/``high_hz``; ``rt60``)."""
    if channel == "clean":
        return np.asarray(wav, np.float32)
    if channel == "noise":
        return add_noise(wav, float(params["snr_db"]), rng, str(params.get("noise_color", "white")))
    if channel == "telephone":
        return band_limit(wav, sample_rate, float(params["low_hz"]), float(params["high_hz"]))
    if channel == "reverb":
        return reverberate(wav, float(params["rt60"]), sample_rate, rng)
    raise ValueError(f"unknown channel {channel!r}; expected clean, noise, telephone or reverb")


CHANNELS: tuple[str, ...] = ("clean", "noise", "telephone", "reverb")

__all__ = [
    "CHANNELS",
    "add_noise",
    "apply_channel",
    "apply_gain",
    "band_limit",
    "colored_noise",
    "noise_floor",
    "normalize_peak",
    "pad",
    "reverberate",
    "rms_db",
    "room_impulse_response",
    "speed_perturb",
    "vtlp",
]
