"""Transcribe audio files with a trained zoo ASR model.

``python -m zoo.transcribe RUN_DIR_OR_CHECKPOINT audio.wav [more.flac ...] [--jsonl] [--output FILE]``
prints one transcript per file (``path<TAB>text``), or one JSON object per line with ``--jsonl``/``--output``.
From Python, `transcribe()` does the same and returns the rows as dicts.

Any zoo ASR model works (``conformer``, ``conformer-plain``, ``sar``, ``sar-ctc``, ``dota``). A file is read
with libsndfile (WAV, FLAC, OGG, ... at any sample rate, any number of channels), downmixed to mono,
resampled to the model's rate ([`zoo.data.read_audio()`][zoo.data.read_audio]), turned into the features the
model was trained
on (log-mel, per-utterance CMVN) and decoded with the model's own ``transcribe`` (greedy by default).

The model, its configuration, its tokenizer and its features travel in the checkpoint under the key
``"inference"`` (`inference_spec()`), so a checkpoint file is all a user needs:

* `inference_spec()` — that description, for a trainer to store beside ``"model"`` (the state dict);
* `save_recognizer()` — write a self-contained checkpoint ``{"model": ..., "inference": ...}``;
* `load_recognizer()` — a `Recognizer` from a checkpoint file or a run folder (``model.pt``,
  which ``python -m zoo.train`` writes at the end, else ``checkpoint.pt``). A training checkpoint
  (``zoo.training`` format, e.g. of a run still in progress) names its model, preset, corpus and tokenizer
  kind; it loads when that corpus is in the corpus cache, whose tokenizer it then uses.

Checkpoints are read with ``torch.load(weights_only=True)``: tensors, numpy arrays and plain containers
only, never arbitrary pickled objects. Every failure names the file: a missing or non-audio file, empty
audio, a damaged checkpoint, a checkpoint of another model (``expect_model``) or weights that do not fit
the model.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import pickle
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from zoo.checks import check_real
from zoo.data import (
    AudioError,
    CharTokenizer,
    Features,
    FeatureSpec,
    SentencePieceTokenizer,
    default_dir,
    read_audio,
)
from zoo.models import DOTA, MODEL_NAMES, SAR, ConformerCTC, build_model
from zoo.training import CheckpointError

__all__ = [
    "INFERENCE_KEY",
    "CheckpointError",
    "FeatureSpec",
    "Features",
    "Recognizer",
    "inference_spec",
    "load_recognizer",
    "main",
    "save_recognizer",
    "split_points",
    "transcribe",
]

#: Key of the model description in a checkpoint dict.
INFERENCE_KEY = "inference"
_FORMAT = 1
#: File names looked for, in this order, inside a run folder.
_CHECKPOINT_NAMES = ("model.pt", "checkpoint.pt", "last.pt", "checkpoints/last.pt")
_MODEL_CLASSES: dict[str, type[nn.Module]] = {
    "conformer": ConformerCTC,
    "conformer-plain": ConformerCTC,
    "sar": SAR,
    "sar-ctc": SAR,
    "dota": DOTA,
}
_MIN_SECONDS = 0.025  # one 25 ms analysis window


# -- the model description stored in a checkpoint ------------------------------------------------------


def _tokenizer_state(tokenizer: Any) -> dict[str, Any]:
    if isinstance(tokenizer, CharTokenizer):
        return {"type": "char", "chars": list(tokenizer.chars)}
    if isinstance(tokenizer, SentencePieceTokenizer):
        data = Path(tokenizer.model_file).read_bytes()
        return {"type": "sentencepiece", "model": torch.frombuffer(bytearray(data), dtype=torch.uint8)}
    raise TypeError(
        f"tokenizer must be a zoo CharTokenizer or SentencePieceTokenizer, got {type(tokenizer).__name__}"
    )


def _tokenizer_from_state(state: Any, source: Path) -> CharTokenizer | SentencePieceTokenizer:
    kind = state.get("type") if isinstance(state, dict) else None
    if kind == "char":
        return CharTokenizer(state["chars"])
    if kind == "sentencepiece":
        data = bytes(state["model"].numpy().tobytes())
        cache = Path(tempfile.gettempdir()) / "zoo-tokenizers"
        cache.mkdir(parents=True, exist_ok=True)
        path = cache / f"{hashlib.sha256(data).hexdigest()[:20]}.model"
        if not path.is_file():
            tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return SentencePieceTokenizer(path)
    raise CheckpointError(f"checkpoint {source}: unknown tokenizer description {kind!r}")


def inference_spec(
    name: str, model: nn.Module, tokenizer: Any, features: FeatureSpec | None = None
) -> dict[str, Any]:
    """What `load_recognizer()` needs besides the weights: the model name (one of
    `zoo.models.MODEL_NAMES`), its full config, the tokenizer and the `FeatureSpec`.

    Store it as ``state[INFERENCE_KEY]`` next to ``state["model"] = model.state_dict()``.
    """
    if name not in _MODEL_CLASSES:
        raise ValueError(f"name must be one of {', '.join(MODEL_NAMES)}; got {name!r}")
    if not isinstance(model, _MODEL_CLASSES[name]):
        raise TypeError(f"a {name!r} model is a {_MODEL_CLASSES[name].__name__}, got {type(model).__name__}")
    cfg: Any = model.cfg
    feats = features or FeatureSpec(n_mels=int(cfg.n_mels))
    if feats.n_mels != cfg.n_mels:
        raise ValueError(f"features give {feats.n_mels} mel bands, the model takes {cfg.n_mels}")
    if tokenizer.vocab_size != cfg.vocab_size:
        raise ValueError(f"tokenizer has {tokenizer.vocab_size} tokens, the model outputs {cfg.vocab_size}")
    return {
        "format": _FORMAT,
        "model": name,
        "config": asdict(cfg),
        "tokenizer": _tokenizer_state(tokenizer),
        "features": asdict(feats),
    }


def save_recognizer(
    path: str | Path, name: str, model: nn.Module, tokenizer: Any, features: FeatureSpec | None = None
) -> Path:
    """Write ``{"model": state_dict, "inference": inference_spec(...)}`` to ``path`` atomically."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    state = {"model": model.state_dict(), INFERENCE_KEY: inference_spec(name, model, tokenizer, features)}
    tmp = p.with_name(f"{p.name}.{os.getpid()}.part")
    torch.save(state, tmp)
    os.replace(tmp, p)
    return p


# -- loading ----------------------------------------------------------------------------------------------


@dataclass
class Recognizer:
    """A loaded model with its tokenizer and features; `transcribe_file()` does one file."""

    name: str
    model: nn.Module
    tokenizer: Any
    features: FeatureSpec
    source: Path

    def __post_init__(self) -> None:
        self.model.eval()
        self._features = self.features.build()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def transcribe_wave(self, wav: np.ndarray | torch.Tensor, **decode: Any) -> str:
        """The transcript of a mono waveform at ``features.sample_rate``; ``decode`` goes to the
        model's ``transcribe`` (e.g. ``beam_size`` for the Conformer and DOTA)."""
        x = torch.as_tensor(np.asarray(wav, dtype=np.float32)) if not isinstance(wav, torch.Tensor) else wav
        if x.dim() != 1:
            raise ValueError(f"wav must be a 1-D mono waveform, got shape {tuple(x.shape)}")
        f = self._features(x.float()).to(self.device)
        ids = self.model.transcribe(f[None], torch.tensor([f.shape[0]], device=self.device), **decode)  # type: ignore[operator]
        return str(self.tokenizer.decode(ids[0]))

    def transcribe_file(
        self, path: str | Path, *, chunk_seconds: float | None = None, **decode: Any
    ) -> dict[str, Any]:
        """``{"path", "text", "duration", "sample_rate", "channels", "model", "rtf"}`` for one file
        (``sample_rate`` and ``channels`` as stored in the file, ``duration`` in seconds).

        With ``chunk_seconds``, audio longer than that is cut into pieces of about that length at the
        quietest 10 ms within a quarter of a piece of each nominal boundary (`split_points()`), each
        piece is transcribed alone and the texts are joined with spaces; the row then has ``"chunks"``:
        the ``[start, end]`` seconds of each piece. The models are trained on utterances of a few seconds.
        """
        if chunk_seconds is not None:
            check_real(chunk_seconds, "chunk_seconds", low=1.0)
        clip = read_audio(path, self.features.sample_rate)
        if clip.duration < _MIN_SECONDS:
            raise AudioError(
                f"audio file {clip.path} is too short ({clip.duration * 1000:.1f} ms; at least "
                f"{_MIN_SECONDS * 1000:.0f} ms needed)"
            )
        sr = self.features.sample_rate
        cuts = [0, len(clip.wav)]
        if chunk_seconds is not None:
            cuts = [0, *split_points(clip.wav, sr, chunk_seconds), len(clip.wav)]
        t0 = time.perf_counter()
        texts = [self.transcribe_wave(clip.wav[a:b], **decode) for a, b in pairwise(cuts)]
        rtf = (time.perf_counter() - t0) / clip.duration
        row: dict[str, Any] = {
            "path": str(path),
            "text": " ".join(t for t in texts if t),
            "duration": round(clip.duration, 4),
            "sample_rate": clip.source_rate,
            "channels": clip.channels,
            "model": self.name,
            "rtf": round(rtf, 4),
        }
        if chunk_seconds is not None:
            row["chunks"] = [[round(a / sr, 3), round(b / sr, 3)] for a, b in pairwise(cuts)]
        return row


def split_points(wav: np.ndarray, sample_rate: int, chunk_seconds: float) -> list[int]:
    """Sample indices that cut ``wav`` into pieces of about ``chunk_seconds``: for each nominal boundary
    $b = k L$ the centre of the 10 ms frame of least energy within $b \\pm L/4$ (ties: the one
    nearest to $b$), measured from the previous cut. Pieces are $3L/4$ to $5L/4$ long,
    the last up to $1.5 L$."""
    length = round(check_real(chunk_seconds, "chunk_seconds", low=1.0) * sample_rate)
    frame = max(1, sample_rate // 100)
    x = np.asarray(wav, dtype=np.float64)
    energy = np.convolve(x**2, np.ones(frame), mode="valid")  # energy[i] = frame starting at i
    cuts: list[int] = []
    start = 0
    while len(x) - start > 1.5 * length:
        lo, hi = start + length - length // 4, min(start + length + length // 4, len(energy))
        window = energy[lo:hi:frame]
        idx = np.flatnonzero(window <= window.min() * (1 + 1e-9) + 1e-20)
        best = lo + frame * int(idx[np.argmin(np.abs(lo + frame * idx - (start + length)))])
        cut = best + frame // 2
        cuts.append(cut)
        start = cut
    return cuts


def _find_checkpoint(path: Path) -> Path:
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.is_file():
        return path
    for name in _CHECKPOINT_NAMES:
        if (path / name).is_file():
            return path / name
    raise CheckpointError(
        f"run folder {path} holds no checkpoint (looked for {', '.join(_CHECKPOINT_NAMES)})"
    )


#: numpy array reconstruction, allowed in ``weights_only`` loads: training checkpoints hold numpy's RNG.
_MULTIARRAY = importlib.import_module(
    "numpy._core.multiarray" if hasattr(np, "_core") else "numpy.core.multiarray"
)
_NUMPY_GLOBALS = [_MULTIARRAY._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]
#: Format tag of the training loop's checkpoints (``{"format", "meta", "state"}``).
_TRAINING_FORMAT = "zoo.training/1"


def _read_checkpoint(path: Path) -> dict[str, Any]:
    """``{"model": state_dict, "inference": spec or None, "meta": run meta or None}`` of a checkpoint."""
    try:
        with torch.serialization.safe_globals(_NUMPY_GLOBALS):
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"cannot read checkpoint {path}: it is damaged, not a PyTorch checkpoint, or holds objects other "
            f"than tensors and plain containers ({str(e).splitlines()[0]})"
        ) from None
    except Exception as e:  # zip errors, truncation, EOF
        raise CheckpointError(
            f"cannot read checkpoint {path}: it is damaged or not a PyTorch checkpoint ({e})"
        ) from None
    if isinstance(payload, dict) and payload.get("format") == _TRAINING_FORMAT:
        modules = (
            payload.get("state", {}).get("modules", {}) if isinstance(payload.get("state"), dict) else {}
        )
        if not isinstance(modules.get("model"), dict):
            raise CheckpointError(f"training checkpoint {path} holds no 'model' module")
        return {"model": modules["model"], INFERENCE_KEY: None, "meta": payload.get("meta") or {}}
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), dict):
        raise CheckpointError(f"{path} is not a zoo checkpoint (no 'model' state dict)")
    return {"model": payload["model"], INFERENCE_KEY: payload.get(INFERENCE_KEY), "meta": None}


def _corpus_tokenizer(ckpt: Path, corpus: str, kind: str, vocab_size: int | None) -> Any:
    """The tokenizer of ``corpus`` in the corpus cache (no corpus is built here)."""
    tdir = default_dir(corpus, seed=0) / "tokenizers"
    if kind == "char":
        cands = [tdir / "char.json"]
    else:
        cands = sorted(tdir.glob(f"spm_{kind}_*_transcript.model"))
    for c in cands:
        if c.is_file():
            tok: Any = CharTokenizer.load(c) if kind == "char" else SentencePieceTokenizer(c)
            if vocab_size is None or tok.vocab_size == vocab_size:
                return tok
    raise CheckpointError(
        f"checkpoint {ckpt} does not store its tokenizer and the corpus {corpus!r} it was trained on is "
        f"not in the cache (no {kind} tokenizer in {tdir}): build it with `python -m zoo.data build "
        f"{corpus}`, or transcribe the run's model.pt"
    )


def _spec_from_run(ckpt: Path, meta: dict[str, Any] | None) -> dict[str, Any]:
    """The description of a checkpoint without one: the training meta (model, preset, corpus, tokenizer,
    vocab_size) or, for older run folders, ``report.json``; the tokenizer comes from the corpus cache and
    the features are the recipe's (80 log-mel bands, CMVN)."""
    info = dict(meta or {})
    report = ckpt.parent / "report.json"
    if not info and report.is_file():
        try:
            info = json.loads(report.read_text())
        except ValueError as e:
            raise CheckpointError(f"{report} is damaged ({e})") from None
    if not all(k in info for k in ("model", "preset", "corpus")):
        raise CheckpointError(
            f"checkpoint {ckpt} does not describe its model (no '{INFERENCE_KEY}' entry, no training meta, "
            "no report.json beside it); save models with zoo.transcribe.save_recognizer"
        )
    name = info["model"]
    if name not in _MODEL_CLASSES:
        raise CheckpointError(
            f"checkpoint {ckpt} holds an unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}"
        )
    kind = info.get("tokenizer") or ("unigram" if name == "dota" else "char")
    tok = _corpus_tokenizer(ckpt, str(info["corpus"]), str(kind), info.get("vocab_size"))
    try:
        cfg = asdict(build_model(name, str(info["preset"]), vocab_size=tok.vocab_size, n_mels=80).cfg)  # type: ignore[call-overload]
    except ValueError as e:
        raise CheckpointError(f"checkpoint {ckpt}: {e}") from None
    return {
        "format": _FORMAT,
        "model": name,
        "config": cfg,
        "tokenizer": _tokenizer_state(tok),
        "features": asdict(FeatureSpec()),
    }


def load_recognizer(
    checkpoint: str | Path, *, expect_model: str | None = None, device: str | torch.device = "cpu"
) -> Recognizer:
    """A `Recognizer` from a checkpoint file or a run folder (see the module docstring).

    Args:
        checkpoint: a file with ``"model"`` and ``"inference"`` entries, or a folder holding one of
            ``model.pt``, ``checkpoint.pt``, ``last.pt`` or ``checkpoints/last.pt``.
        expect_model: when given, the checkpoint must hold this model (one of ``MODEL_NAMES``).
        device: where to run the model.

    Raises:
        CheckpointError: naming the file, when it is missing, damaged, of another model than
            ``expect_model``, or its weights do not fit the model it describes.
    """
    if expect_model is not None and expect_model not in _MODEL_CLASSES:
        raise ValueError(f"expect_model must be one of {', '.join(MODEL_NAMES)}; got {expect_model!r}")
    path = _find_checkpoint(Path(checkpoint))
    state = _read_checkpoint(path)
    spec = state[INFERENCE_KEY]
    if spec is None:
        spec = _spec_from_run(path, state["meta"])
    if not isinstance(spec, dict) or spec.get("format") != _FORMAT:
        raise CheckpointError(f"checkpoint {path}: unsupported model description (format {spec!r:.40})")
    name = spec.get("model")
    if name not in _MODEL_CLASSES:
        raise CheckpointError(
            f"checkpoint {path} holds an unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}"
        )
    if expect_model is not None and name != expect_model:
        raise CheckpointError(f"checkpoint {path} holds a {name!r} model, not {expect_model!r}")
    try:
        feats = FeatureSpec(**spec["features"])
        model = build_model(name, "tiny", **spec["config"])
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(
            f"checkpoint {path}: its {name!r} model description does not load ({e})"
        ) from None
    known = {f.name for f in fields(model.cfg)}  # type: ignore[arg-type]
    if set(spec["config"]) != known:
        raise CheckpointError(f"checkpoint {path}: config fields differ from {name!r}'s")
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        first = str(e).split("\n\t")[1:3]
        raise CheckpointError(
            f"checkpoint {path}: its weights do not fit a {name!r} model with the stored config "
            f"({'; '.join(s.strip() for s in first) or e})"
        ) from None
    tok = _tokenizer_from_state(spec["tokenizer"], path)
    if tok.vocab_size != model.cfg.vocab_size:  # type: ignore[union-attr]
        raise CheckpointError(
            f"checkpoint {path}: tokenizer has {tok.vocab_size} tokens, the model {model.cfg.vocab_size}"  # type: ignore[union-attr]
        )
    return Recognizer(name, model.to(device), tok, feats, path)


# -- files ------------------------------------------------------------------------------------------------


def transcribe(
    checkpoint: str | Path | Recognizer,
    paths: Sequence[str | Path],
    *,
    errors: str = "raise",
    device: str | torch.device = "cpu",
    expect_model: str | None = None,
    chunk_seconds: float | None = None,
    **decode: Any,
) -> list[dict[str, Any]]:
    """Transcribe audio files; one dict per file (see `Recognizer.transcribe_file()`).

    Args:
        checkpoint: a checkpoint file, a run folder, or a loaded `Recognizer`.
        paths: audio files (WAV, FLAC, OGG, ...; any rate; mono or multichannel).
        errors: ``"raise"`` (default) stops at the first unreadable file; ``"record"`` puts
            ``{"path", "error"}`` in its row and goes on.
        device: as in `load_recognizer()`.
        expect_model: as in `load_recognizer()`.
        chunk_seconds: cut long files into pieces of about this many seconds at pauses
            (see `Recognizer.transcribe_file()`); ``None`` (default) decodes each file whole.
        decode: passed to the model's ``transcribe`` (e.g. ``beam_size=4``).

    Raises:
        AudioError: naming the file (missing, not audio, empty, too short) when ``errors="raise"``.
        CheckpointError: see `load_recognizer()`.
    """
    if errors not in ("raise", "record"):
        raise ValueError(f"errors must be 'raise' or 'record'; got {errors!r}")
    if isinstance(paths, (str, Path)):
        raise TypeError("paths must be a sequence of files, not one path (wrap it in a list)")
    rec = (
        checkpoint
        if isinstance(checkpoint, Recognizer)
        else load_recognizer(checkpoint, expect_model=expect_model, device=device)
    )
    rows: list[dict[str, Any]] = []
    for p in paths:
        try:
            rows.append(rec.transcribe_file(p, chunk_seconds=chunk_seconds, **decode))
        except AudioError as e:
            if errors == "raise":
                raise
            rows.append({"path": str(p), "error": str(e)})
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns the exit status (0, 1 when a file failed, 2 for a bad checkpoint)."""
    ap = argparse.ArgumentParser(
        prog="python -m zoo.transcribe",
        description="Transcribe audio files (WAV, FLAC, OGG; any sample rate; mono or stereo) with a trained "
        "zoo ASR model.",
    )
    ap.add_argument("checkpoint", type=Path, help="a checkpoint file or a training run folder")
    ap.add_argument("audio", nargs="+", type=Path, help="audio files to transcribe")
    ap.add_argument("--jsonl", action="store_true", help="print one JSON object per file instead of text")
    ap.add_argument(
        "--output", type=Path, default=None, help="write JSON lines to this file (default: stdout)"
    )
    ap.add_argument(
        "--beam-size", type=int, default=1, help="beam width for conformer and dota (default 1: greedy)"
    )
    ap.add_argument("--model", default=None, choices=MODEL_NAMES, help="refuse a checkpoint of another model")
    ap.add_argument("--device", default="cpu", help="torch device (default cpu)")
    ap.add_argument("--keep-going", action="store_true", help="report unreadable files and continue")
    ap.add_argument(
        "--chunk-seconds",
        type=float,
        default=None,
        help="cut long files into pieces of about this many seconds at pauses (default: whole files)",
    )
    args = ap.parse_args(argv)
    if args.chunk_seconds is not None and not args.chunk_seconds >= 1.0:
        ap.error(f"--chunk-seconds must be >= 1, got {args.chunk_seconds}")
    try:
        dev = torch.device(args.device)
    except RuntimeError as e:
        ap.error(f"--device: {e}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device is available here")
    try:
        rec = load_recognizer(args.checkpoint, expect_model=args.model, device=args.device)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    decode: dict[str, Any] = {}
    if args.beam_size != 1:
        if args.beam_size < 1:
            ap.error(f"--beam-size must be >= 1, got {args.beam_size}")
        if rec.name not in ("conformer", "conformer-plain", "dota"):
            ap.error(f"--beam-size applies to conformer and dota models, not {rec.name}")
        decode["beam_size"] = args.beam_size
    out = open(args.output, "w", encoding="utf-8") if args.output else None
    status = 0
    try:
        for p in args.audio:
            try:
                row = rec.transcribe_file(p, chunk_seconds=args.chunk_seconds, **decode)
            except AudioError as e:
                print(f"error: {e}", file=sys.stderr)
                if not args.keep_going:
                    return 1
                status = 1
                row = {"path": str(p), "error": str(e)}
            if out is not None:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                out.flush()
            elif args.jsonl:
                print(json.dumps(row, ensure_ascii=False), flush=True)
            elif "text" in row:
                print(f"{row['path']}\t{row['text']}", flush=True)
    finally:
        if out is not None:
            out.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
