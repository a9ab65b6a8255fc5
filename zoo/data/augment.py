"""Waveform perturbations and channel simulation (functional; numpy in, numpy out, explicit RNG).

Every function takes a 1-D float32 waveform and returns a new one; random ones take a
``numpy.random.Generator`` (the corpus, so that a corpus is a pure function of its seed and each parameter
is recorded in its manifest, ``Utterance.augment``) or a ``torch.Generator`` (on-the-fly augmentation in
training, `Augment`).

* `speed_perturb()` — resampling speed change by a factor (Ko et al., 2015, "Audio augmentation for
  speech recognition"): duration ÷ factor, pitch and formants × factor (what
  ``torchaudio.functional.speed`` does, with the resampling kernel cached).
* `pitch_shift()` — pitch × $2^{s/12}$ for ``s`` semitones, duration kept (phase-locked
  vocoder time stretch, `phase_locked_stretch()`, then resampling).
* `vtlp()` — vocal-tract-length perturbation (Jaitly & Hinton, 2013): the STFT frequency axis is warped
  piecewise linearly, $f' = \\alpha f$ below $f_0 = f_{hi} \\min(\\alpha, 1)/\\alpha$ and linearly
  to Nyquist above, which moves the formants by $\\alpha$ and keeps the bandwidth.
* `add_noise()` — white or pink noise at a signal-to-noise ratio (``torchaudio.functional.add_noise``).
* `band_limit()` — a linear-phase FIR band-pass (telephone band 300–3400 Hz by default).
* `lowpass()` — a linear-phase Kaiser-window FIR low-pass (Kaiser, 1974) with a given stop-band edge and
  attenuation: a codec-like band limit that leaves (almost) nothing above the cut-off.
* `reverberate()` — convolution with a synthetic room impulse response: a direct path plus
  exponentially decaying Gaussian noise that falls by 60 dB in ``rt60`` seconds (Polack's model),
  `fft_convolve()`.
* `noise_floor()` — low-level white noise at a given dBFS, so no sample run is exact digital silence.
* `apply_gain()` — gain in dB followed by peak protection (never clips).
* `Augment` — a composable on-the-fly pipeline (speed, pitch, reverberation, noise, band limit), one
  ``torch.Generator`` for every draw, per utterance or on a padded batch with lengths.

torchaudio provides the signal processing (cached ``Resample`` kernels, ``add_noise``, STFTs). Our own
code remains only where torchaudio lacks what is needed here or is much slower for the corpus's sizes
(``fftconvolve`` transforms at exactly $N + M - 1$ points, `fft_convolve()` at a fast FFT length; the
biquads run a sample-by-sample recursion, `band_limit()` is one FIR convolution): its random transforms
(``SpeedPerturbation``, ``AddNoise`` without a noise tensor) draw from the global RNG, not from a generator;
it has no synthetic room impulse response, no FIR filter design and no phase-locked vocoder; and its
batch transforms apply one parameter to the whole batch, whereas `Augment.batch()` draws per
utterance and keeps lengths and padding right.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import torch
import torchaudio.functional as AF

from zoo.checks import check_real
from zoo.data.audio import resample

#: A source of randomness: numpy's (the corpus) or torch's (training-time augmentation).
Rng = np.random.Generator | torch.Generator


def _normal(n: int, rng: Rng) -> np.ndarray:
    """``n`` standard normal float32 draws from ``rng``."""
    if isinstance(rng, torch.Generator):
        return torch.randn(n, generator=rng, dtype=torch.float32).numpy()
    if isinstance(rng, np.random.Generator):
        return rng.standard_normal(n, dtype=np.float32)
    raise TypeError(f"rng must be a numpy.random.Generator or torch.Generator, got {type(rng).__name__}")


def _uniform(rng: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=rng, dtype=torch.float64))


def fast_length(n: int) -> int:
    """The smallest $m \\ge n$ of the form $2^a 3^b 5^c$ (an FFT of that size is fast; an FFT of a
    length with a large prime factor can be 10–50 times slower)."""
    if n <= 1:
        return 1
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def fft_convolve(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Full linear convolution of 1-D ``x`` and ``h`` (length $N + M - 1$) through real FFTs of a fast
    length (`fast_length()`). ``torchaudio.functional.fftconvolve`` computes the same, but at exactly
    $N + M - 1$ points, whose FFT is often several times slower (a 2 s utterance with a 0.4 s room
    response: 38 399 = 19 · 43 · 47 points)."""
    n = len(x) + len(h) - 1
    m = fast_length(n)
    y = torch.fft.irfft(torch.fft.rfft(x, m) * torch.fft.rfft(h.to(x.dtype), m), m)
    return y[:n]


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
    """Zero-pad ``start_s`` seconds before and ``end_s`` after (fill later with `noise_floor()`)."""
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
    # what torchaudio.functional.speed does, with the resampling kernel cached per factor
    source = int(factor * sample_rate)
    return resample(_t(wav), source, sample_rate).numpy()


def vtlp(
    wav: np.ndarray, alpha: float, sample_rate: int, f_hi: float = 4800.0, n_fft: int = 512
) -> np.ndarray:
    """Warp the spectral envelope by ``alpha`` (VTLP, Jaitly & Hinton 2013) through the STFT.

    Each output bin $f$ takes the magnitude of the input at $w^{-1}(f)$ (linear interpolation),
    where $w$ is the piecewise-linear warp of the module docstring; its phase advances at the warped
    instantaneous frequency of the nearest input bin (phase vocoder, Flanagan & Golden 1966), so a
    partial at $f$ is resynthesised at $w(f)$. The duration is unchanged.
    """
    if not 0.7 <= alpha <= 1.3:
        raise ValueError(f"VTLP alpha must be in [0.7, 1.3], got {alpha}")
    x = _t(wav)
    if alpha == 1.0 or len(x) < n_fft:
        return x.numpy().copy()
    nyq = sample_rate / 2
    hop = n_fft // 4
    win = torch.hann_window(n_fft)
    spec = torch.stft(x, n_fft, hop, window=win, return_complex=True)  # (F, T), float32
    nb = spec.shape[0]
    freqs = torch.linspace(0, nyq, nb)
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
    return out.numpy()


def colored_noise(n: int, rng: Rng, color: str = "white") -> np.ndarray:
    """``n`` samples of unit-RMS white or pink (1/f power) Gaussian noise."""
    if color not in ("white", "pink"):
        raise ValueError(f"noise color must be 'white' or 'pink', got {color!r}")
    z = _normal(n, rng)
    if color == "pink" and n > 1:  # shape white noise of a fast FFT length, keep the first n samples
        m = fast_length(n)
        zt = torch.from_numpy(z if m == n else np.concatenate([z, _normal(m - n, rng)]))
        f = torch.fft.rfft(zt)
        scale = torch.ones(len(f))
        scale[1:] = torch.arange(1, len(f), dtype=torch.float32).rsqrt()
        z = torch.fft.irfft(f * scale, m)[:n].numpy()
    r = float(np.sqrt(np.mean(np.square(z, dtype=np.float64)))) if n else 1.0
    return (z / np.float32(r if r > 0 else 1.0)).astype(np.float32, copy=False)


def add_noise(wav: np.ndarray, snr_db: float, rng: Rng, color: str = "white") -> np.ndarray:
    """Add ``color`` noise at signal-to-noise ratio ``snr_db`` (signal power over the whole utterance)."""
    x = _t(wav)
    noise = torch.from_numpy(colored_noise(len(x), rng, color))
    return AF.add_noise(x[None], noise[None], torch.tensor([float(snr_db)]))[0].numpy()


@cache
def bandpass_fir(sample_rate: int, low_hz: float, high_hz: float, attenuation_db: float = 50.0) -> np.ndarray:
    """Linear-phase band-pass taps (Kaiser-window design, Kaiser 1974): the difference of two windowed
    sinc low-passes with edges at ``high_hz`` and ``low_hz``, transition bands $0.5 f_{low}$ wide
    centred on the edges, ``attenuation_db`` of stop-band rejection; cached per argument tuple."""
    if not 0 < low_hz < high_hz < sample_rate / 2:
        raise ValueError(f"need 0 < low_hz < high_hz < {sample_rate / 2}, got {low_hz}, {high_hz}")
    a = float(attenuation_db)
    width = 0.5 * low_hz
    m = math.ceil((a - 8) / (2.285 * 2 * math.pi * width / sample_rate)) | 1
    beta = 0.1102 * (a - 8.7) if a > 50 else 0.5842 * (a - 21) ** 0.4 + 0.07886 * (a - 21)
    n = np.arange(m) - (m - 1) / 2
    hi, lo = high_hz / sample_rate, low_hz / sample_rate
    h = (2 * hi * np.sinc(2 * hi * n) - 2 * lo * np.sinc(2 * lo * n)) * np.kaiser(m, beta)
    return h.astype(np.float32)


def band_limit(
    wav: np.ndarray, sample_rate: int, low_hz: float = 300.0, high_hz: float = 3400.0
) -> np.ndarray:
    """Telephone-style band limiting: the zero-delay FIR band-pass `bandpass_fir()` (50 dB stop band),
    applied with `fft_convolve()`; length kept. (torchaudio's biquads, ``highpass_biquad`` and
    ``lowpass_biquad``, run a sample-by-sample recursion that costs about 4 times as much for a
    24 dB/octave cascade.)"""
    x = _t(wav)
    h = torch.from_numpy(bandpass_fir(int(sample_rate), float(low_hz), float(high_hz)))
    d = (len(h) - 1) // 2
    return fft_convolve(x, h)[d : d + len(x)].numpy()


def room_impulse_response(rt60: float, sample_rate: int, rng: Rng) -> np.ndarray:
    """Synthetic RIR: unit direct path, then Gaussian noise decaying by 60 dB over ``rt60`` s (starting
    2.5 ms later, at −6 dB), ``rt60`` seconds long; unit energy."""
    if not 0.05 <= rt60 <= 2.0:
        raise ValueError(f"rt60 must be in [0.05, 2] s, got {rt60}")
    n = max(2, round(rt60 * sample_rate))
    t = np.arange(n) / sample_rate
    tail = _normal(n, rng) * (10 ** (-3 * t / rt60) * 0.5).astype(np.float32)
    tail[: round(0.0025 * sample_rate)] = 0.0
    h = tail
    h[0] = 1.0
    return (h / np.sqrt(np.sum(h**2))).astype(np.float32)


def reverberate(wav: np.ndarray, rt60: float, sample_rate: int, rng: Rng) -> np.ndarray:
    """Convolve with `room_impulse_response()` (length kept; RMS restored to the input's)."""
    x = _t(wav)
    h = torch.from_numpy(room_impulse_response(rt60, sample_rate, rng))
    y = fft_convolve(x, h)[: len(x)]
    rx, ry = x.pow(2).mean().sqrt(), y.pow(2).mean().sqrt()
    return (y * (rx / ry if ry > 0 else 1.0)).numpy()


def noise_floor(wav: np.ndarray, level_db: float, rng: Rng) -> np.ndarray:
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


_PITCH_GRID = 320  # pitch ratios are multiples of 1/320 (≈ 0.054 semitone), so resampling kernels stay small


def phase_locked_stretch(spec: torch.Tensor, rate: float, hop: int, n_fft: int) -> torch.Tensor:
    """Time-stretch a complex STFT ``(F, T)`` by ``rate`` (> 1 shortens) with a phase vocoder (Flanagan &
    Golden 1966) and identity phase locking (Laroche & Dolson 1999).

    Output frame $j$ reads input time $\\tau_j = j \\cdot rate$ (magnitudes interpolated
    linearly); each spectral peak accumulates the instantaneous-frequency phase advance
    $\\omega_k H + \\mathrm{princarg}(\\phi_{i+1,k} - \\phi_{i,k} - \\omega_k H)$, and every other bin
    keeps its input phase offset to its nearest peak. ``torchaudio.functional.phase_vocoder`` has no phase
    locking: it carries the bins' phase relations of its first frames forever, and a steady tone loses
    0.2–2 dB (up to 14 dB after an abrupt onset) depending on the rate, which is why this one exists.
    """
    F, T = spec.shape
    steps = torch.arange(0, T, rate, dtype=torch.float64)
    i0 = steps.long().clamp(max=T - 1)
    i1 = (i0 + 1).clamp(max=T - 1)
    a = (steps - i0)[None]
    absx = spec.abs()
    mag = (1 - a) * absx[:, i0] + a * absx[:, i1]
    ph = spec.angle()
    omega = (2 * math.pi * hop / n_fft) * torch.arange(F, dtype=torch.float64)[:, None]
    d = ph[:, i1] - ph[:, i0] - omega
    inc = omega + d - 2 * math.pi * torch.round(d / (2 * math.pi))
    acc = ph[:, :1] + torch.cumsum(inc, 1) - inc  # frame j: phase of frame 0 plus the advances before j
    left = torch.cat([torch.full_like(mag[:1], -1.0), mag[:-1]])
    right = torch.cat([mag[1:], torch.full_like(mag[:1], -1.0)])
    peak = (mag >= left) & (mag > right)
    idx = torch.arange(F)[:, None].expand(F, mag.shape[1])
    prev = torch.where(peak, idx, torch.full_like(idx, -10 * F)).cummax(0).values
    nxt = torch.where(peak, idx, torch.full_like(idx, 10 * F)).flip(0).cummin(0).values.flip(0)
    near = torch.where((idx - prev) <= (nxt - idx), prev, nxt).clamp(0, F - 1)
    src = ph[:, i0]
    return torch.polar(mag, acc.gather(0, near) + src - src.gather(0, near))


def pitch_shift(wav: np.ndarray, semitones: float, sample_rate: int, n_fft: int = 512) -> np.ndarray:
    """Shift the pitch by ``semitones`` (frequencies × $r = 2^{s/12}$), keeping the duration.

    `phase_locked_stretch()` stretches the signal to $r N$ samples at unchanged pitch, and
    resampling by $1/r$ (``torchaudio.functional.resample``) brings it back to $N$ samples with
    every frequency × r. ``torchaudio.functional.pitch_shift`` does the same with a vocoder without phase
    locking, and resamples between ``sample_rate / r`` and ``sample_rate`` rounded to integers, whose
    kernels can have thousands of phases (26 s for 3 s of audio at 2 semitones); here $r$ is rounded
    to a multiple of 1/320 (≤ 0.03 semitone of error).
    """
    if not -12.0 <= semitones <= 12.0:
        raise ValueError(f"pitch shift must be in [-12, 12] semitones, got {semitones}")
    x = _t(wav)
    q = round(_PITCH_GRID * 2 ** (semitones / 12))
    if q == _PITCH_GRID or len(x) < n_fft:
        return x.numpy().copy()
    r = q / _PITCH_GRID
    hop = n_fft // 4
    win = torch.hann_window(n_fft, dtype=torch.float64)
    spec = torch.stft(x.double(), n_fft, hop, window=win, return_complex=True)
    stretched = phase_locked_stretch(spec, 1 / r, hop, n_fft)
    y = torch.istft(stretched, n_fft, hop, window=win, length=round(len(x) * r))
    y = resample(y, q, _PITCH_GRID).double()
    out = torch.zeros(len(x), dtype=torch.float64)
    out[: min(len(x), len(y))] = y[: len(x)]
    return out.float().numpy()


def lowpass_fir(sample_rate: int, cutoff_hz: float, attenuation_db: float = 80.0) -> np.ndarray:
    """Linear-phase low-pass taps, Kaiser-window design (Kaiser, 1974): pass band up to
    $0.9 f_c$, stop band from ``cutoff_hz`` = $f_c$ with ``attenuation_db`` of rejection;
    $\\beta = 0.1102 (A - 8.7)$, $M = \\lceil (A - 8) / (2.285 \\cdot 2\\pi \\Delta f / f_s)
    \\rceil$ taps (rounded up to odd), ideal response cut at the middle of the transition band."""
    if not 0 < cutoff_hz < sample_rate / 2:
        raise ValueError(f"cutoff_hz must be in (0, {sample_rate / 2}) Hz, got {cutoff_hz}")
    if not attenuation_db >= 21:
        raise ValueError(f"attenuation_db must be >= 21, got {attenuation_db}")
    a = float(attenuation_db)
    width = 0.1 * cutoff_hz
    m = math.ceil((a - 8) / (2.285 * 2 * math.pi * width / sample_rate)) | 1
    beta = 0.1102 * (a - 8.7) if a > 50 else 0.5842 * (a - 21) ** 0.4 + 0.07886 * (a - 21)
    fc = (cutoff_hz - width / 2) / sample_rate
    n = np.arange(m) - (m - 1) / 2
    h = 2 * fc * np.sinc(2 * fc * n) * np.kaiser(m, beta)
    return (h / h.sum()).astype(np.float64)


def lowpass(wav: np.ndarray, sample_rate: int, cutoff_hz: float, attenuation_db: float = 80.0) -> np.ndarray:
    """Zero-delay FIR low-pass (`lowpass_fir()`, ``torchaudio.functional.fftconvolve``): nothing above
    ``cutoff_hz`` survives beyond −``attenuation_db``; length kept."""
    x = _t(wav)
    h = torch.from_numpy(lowpass_fir(sample_rate, cutoff_hz, attenuation_db))
    y = fft_convolve(x.double(), h)
    d = (len(h) - 1) // 2
    return y[d : d + len(x)].float().numpy()


def _pair(value: Any, name: str, lo: float, hi: float) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"Augment.{name} must be a (low, high) pair or None, got {value!r}") from None
    if not (math.isfinite(a) and math.isfinite(b) and lo <= a <= b <= hi):
        raise ValueError(f"Augment.{name} must satisfy {lo} <= low <= high <= {hi}, got {value!r}")
    return (a, b)


@dataclass(frozen=True)
class Augment:
    """On-the-fly waveform augmentation: a composable pipeline applied in the order speed → pitch →
    reverberation → noise → band limit, every draw from one ``torch.Generator`` (same generator state, same
    output; an effect whose range is ``None`` or whose probability is 0 draws nothing).

    Attributes:
        speeds: speed factors drawn uniformly per utterance (Ko et al., 2015, use 0.9, 1.0, 1.1);
            ``()`` = off. Duration ÷ factor (`speed_perturb()`).
        pitch_semitones: ``(low, high)`` uniform pitch shift (`pitch_shift()`), with ``pitch_prob``.
        rt60: ``(low, high)`` seconds of reverberation time of a synthetic room
            (`reverberate()`), with ``reverb_prob``.
        snr_db: ``(low, high)`` uniform signal-to-noise ratio of added noise (`add_noise()`), with
            ``noise_prob``; the colour is drawn from ``noise_colors``.
        lowpass_hz: ``(low, high)`` uniform cut-off of a codec-like low-pass (`lowpass()`), with
            ``band_prob``.

    With $x$ the input: noise gives $x + \\sigma n$ for unit-power noise $n$ and
    $\\sigma^2 = P_x 10^{-\\mathrm{SNR}/10}$; reverberation gives $(h * x)$ truncated to the input
    length and scaled back to its RMS, $h$ a synthetic room response of the drawn RT60.

    ``Augment()`` does nothing; `AUGMENT_PRESETS` holds a ready-made ``"robust"`` mix.
    """

    speeds: tuple[float, ...] = ()
    pitch_semitones: tuple[float, float] | None = None
    pitch_prob: float = 0.5
    rt60: tuple[float, float] | None = None
    reverb_prob: float = 0.3
    snr_db: tuple[float, float] | None = None
    noise_prob: float = 0.5
    noise_colors: tuple[str, ...] = ("white", "pink")
    lowpass_hz: tuple[float, float] | None = None
    band_prob: float = 0.3

    def __post_init__(self) -> None:
        if not isinstance(self.speeds, (tuple, list)):
            raise TypeError(f"Augment.speeds must be a tuple of factors, got {self.speeds!r}")
        speeds = tuple(check_real(f, "Augment.speeds", low=0.5, high=2.0) for f in self.speeds)
        object.__setattr__(self, "speeds", speeds)
        object.__setattr__(self, "pitch_semitones", _pair(self.pitch_semitones, "pitch_semitones", -12, 12))
        object.__setattr__(self, "rt60", _pair(self.rt60, "rt60", 0.05, 2.0))
        object.__setattr__(self, "snr_db", _pair(self.snr_db, "snr_db", -20.0, 100.0))
        object.__setattr__(self, "lowpass_hz", _pair(self.lowpass_hz, "lowpass_hz", 1.0, math.inf))
        for name in ("pitch_prob", "reverb_prob", "noise_prob", "band_prob"):
            object.__setattr__(
                self, name, check_real(getattr(self, name), f"Augment.{name}", low=0.0, high=1.0)
            )
        colors = tuple(self.noise_colors)
        if not colors or any(c not in ("white", "pink") for c in colors):
            raise ValueError(
                f"Augment.noise_colors must be a non-empty subset of white, pink; got {colors!r}"
            )
        object.__setattr__(self, "noise_colors", colors)

    def draw(self, generator: torch.Generator) -> dict[str, Any]:
        """The parameters of one utterance: ``speed``, and ``pitch_semitones``, ``rt60``, ``snr_db`` with
        ``noise_color``, ``lowpass_hz`` for the effects that fire."""
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        g = generator
        p: dict[str, Any] = {}
        if self.speeds:
            p["speed"] = self.speeds[int(torch.randint(len(self.speeds), (), generator=g))]
        fire = lambda prob: prob > 0 and float(torch.rand((), generator=g, dtype=torch.float64)) < prob  # noqa: E731
        if self.pitch_semitones is not None and fire(self.pitch_prob):
            p["pitch_semitones"] = _uniform(g, *self.pitch_semitones)
        if self.rt60 is not None and fire(self.reverb_prob):
            p["rt60"] = _uniform(g, *self.rt60)
        if self.snr_db is not None and fire(self.noise_prob):
            p["snr_db"] = _uniform(g, *self.snr_db)
            p["noise_color"] = self.noise_colors[int(torch.randint(len(self.noise_colors), (), generator=g))]
        if self.lowpass_hz is not None and fire(self.band_prob):
            p["lowpass_hz"] = _uniform(g, *self.lowpass_hz)
        return p

    def apply(
        self,
        wav: np.ndarray | torch.Tensor,
        sample_rate: int,
        params: dict[str, Any],
        generator: torch.Generator,
    ) -> torch.Tensor:
        """Apply drawn ``params`` (see `draw()`); noise and room responses come from ``generator``."""
        x = np.asarray(wav.detach().cpu() if isinstance(wav, torch.Tensor) else wav, dtype=np.float32)
        if "speed" in params:
            x = speed_perturb(x, float(params["speed"]), sample_rate)
        if "pitch_semitones" in params:
            x = pitch_shift(x, float(params["pitch_semitones"]), sample_rate)
        if "rt60" in params:
            x = reverberate(x, float(params["rt60"]), sample_rate, generator)
        if "snr_db" in params:
            x = add_noise(x, float(params["snr_db"]), generator, str(params.get("noise_color", "white")))
        if "lowpass_hz" in params:
            cut = float(params["lowpass_hz"])
            if cut < sample_rate / 2:
                x = lowpass(x, sample_rate, cut)
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    def __call__(
        self, wav: np.ndarray | torch.Tensor, sample_rate: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Augment one mono waveform ``(N,)``; returns it (a new tensor) and the parameters drawn."""
        params = self.draw(generator)
        return self.apply(wav, sample_rate, params, generator), params

    def batch(
        self,
        wavs: torch.Tensor,
        lengths: torch.Tensor | Sequence[int],
        sample_rate: int,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor, list[dict[str, Any]]]:
        """Augment a zero-padded batch ``(B, N)`` whose row ``b`` holds ``lengths[b]`` valid samples.

        Each utterance draws its own parameters, in row order (row ``b`` equals ``self(wavs[b, :len_b])``
        with the generator where row ``b - 1`` left it). Returns the new zero-padded batch, the new lengths
        (speed changes them) and the parameters.
        """
        if wavs.dim() != 2:
            raise ValueError(f"wavs must be (B, N), got shape {tuple(wavs.shape)}")
        lens = [int(n) for n in lengths]
        if len(lens) != wavs.shape[0] or any(not 0 <= n <= wavs.shape[1] for n in lens):
            raise ValueError(f"lengths must be {wavs.shape[0]} values in [0, {wavs.shape[1]}], got {lens}")
        outs, params = [], []
        for b, n in enumerate(lens):
            y, p = self(wavs[b, :n], sample_rate, generator)
            outs.append(y)
            params.append(p)
        new_lens = torch.tensor([len(y) for y in outs], dtype=torch.long)
        out = torch.zeros(len(outs), int(new_lens.max()) if outs else 0, dtype=wavs.dtype)
        for b, y in enumerate(outs):
            out[b, : len(y)] = y
        return out, new_lens, params


#: Ready-made pipelines: ``"none"``; ``"robust"`` — speed 0.9/1.0/1.1, ±2 semitones (p 0.5), rooms of
#: RT60 0.2–0.8 s (p 0.3), white or pink noise at 5–30 dB SNR (p 0.5), low-pass at 3.4–7 kHz (p 0.3).
AUGMENT_PRESETS: dict[str, Augment] = {
    "none": Augment(),
    "robust": Augment(
        speeds=(0.9, 1.0, 1.1),
        pitch_semitones=(-2.0, 2.0),
        rt60=(0.2, 0.8),
        snr_db=(5.0, 30.0),
        lowpass_hz=(3400.0, 7000.0),
    ),
}


CHANNELS: tuple[str, ...] = ("clean", "noise", "telephone", "reverb")

__all__ = [
    "AUGMENT_PRESETS",
    "CHANNELS",
    "Augment",
    "Rng",
    "add_noise",
    "apply_channel",
    "apply_gain",
    "band_limit",
    "bandpass_fir",
    "colored_noise",
    "fast_length",
    "fft_convolve",
    "lowpass",
    "lowpass_fir",
    "noise_floor",
    "normalize_peak",
    "pad",
    "phase_locked_stretch",
    "pitch_shift",
    "reverberate",
    "rms_db",
    "room_impulse_response",
    "speed_perturb",
    "vtlp",
]
