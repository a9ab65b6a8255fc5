"""Integrity of a generated corpus cache: file sizes and content hashes, generator versions.

A generated corpus is cached on disk (``$ZOO_DATA_DIR``, see [`zoo.data.default_dir()`][zoo.data.default_dir])
and reused by
every later run, so a damaged or stale cache would silently change every result computed from it. Three
records guard it:

* every manifest line carries the size in bytes and the SHA-256 of its audio file
  ([`zoo.data.Utterance.file_size`][zoo.data.Utterance.file_size],
  [`zoo.data.Utterance.sha256`][zoo.data.Utterance.sha256]);
* ``config.json`` records the *generator*: the package version, `SYNTHESIS_VERSION`, a
  fingerprint of the generator's code (`code_fingerprint()`), the ``espeakng-loader`` and eSpeak NG
  versions and, when the corpus uses it, Festival's version. A cache whose generator versions differ
  from the running ones is refused (`StaleCorpusError`) rather than reused; one built by other
  code under the same versions is used with a ``RuntimeWarning``; the versions of numpy, torch,
  torchaudio and libsndfile are recorded beside it for diagnosis;
* loading checks counts, sizes and versions (cheap: one ``stat`` per file); ``python -m zoo.data verify``
  also hashes every file and re-renders exactly the damaged utterances.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
import platform
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from zoo.data.manifest import Utterance

#: Version of the corpus generation code (planning, text, synthesis, perturbation, encoding). Bump it with
#: every change that alters a single output sample or manifest field of a corpus built from an unchanged
#: [`zoo.data.CorpusConfig`][zoo.data.CorpusConfig]: caches built by other values are then refused instead of
# reused.
SYNTHESIS_VERSION = 3


#: The modules whose code determines a generated corpus's content (see `code_fingerprint()`).
GENERATOR_MODULES: tuple[str, ...] = (
    "zoo.data.corpus",
    "zoo.data.text",
    "zoo.data.synth",
    "zoo.data.festival",
    "zoo.data.augment",
    "zoo.data.audio",
    "zoo.data.manifest",
    "zoo.data.tokenizers",
)


class StaleCorpusError(ValueError):
    """A cached corpus was built by another generator (package, synthesis code, eSpeak NG or Festival)."""


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _code_of(path: Path) -> str:
    """The module's syntax tree without docstrings: comments, formatting and docs do not count."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
    return ast.dump(tree, annotate_fields=False)


@cache
def code_fingerprint() -> str:
    """A short hash of the code of `GENERATOR_MODULES` (syntax trees, docstrings left out).

    It changes with any code change in them; loading a corpus cached by other code then warns (see
    `code_changed()`), so that a change that alters the corpus without a bump of
    `SYNTHESIS_VERSION` does not go unnoticed. ``"unavailable"`` when the sources are not installed.
    """
    h = hashlib.sha256()
    for name in GENERATOR_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            return "unavailable"
        h.update(name.encode() + b"\0" + _code_of(Path(spec.origin)).encode() + b"\0")
    return h.hexdigest()[:16]


def generator_versions(uses_festival: bool = False) -> dict[str, Any]:
    """The versions that determine a generated corpus's audio, as recorded in its ``config.json``.

    Args:
        uses_festival: whether the corpus renders some utterances with Festival (its version is then
            recorded too; ``None`` when Festival is not installed).
    """
    from bilevel import __version__
    from zoo.data.synth import espeak_version

    out: dict[str, Any] = {
        "package": __version__,
        "synthesis": SYNTHESIS_VERSION,
        "code": code_fingerprint(),
        "espeakng-loader": _dist_version("espeakng-loader"),
        "espeak-ng": espeak_version(),
        "faker": _dist_version("faker"),  # the person names of the ``name`` kind
    }
    if uses_festival:
        from zoo.data.festival import festival_version

        out["festival"] = festival_version()
    return out


def environment_versions() -> dict[str, Any]:
    """Versions of the numerical libraries a build ran with (recorded for diagnosis, not compared)."""
    import soundfile

    out: dict[str, Any] = {"python": platform.python_version()}
    for name in ("numpy", "torch", "torchaudio", "soundfile"):
        out[name] = _dist_version(name)
    out["libsndfile"] = str(soundfile.__libsndfile_version__)
    return out


def version_differences(recorded: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between a recorded and the current generator's versions (empty when
    equal); the code fingerprint is not a version and is left out (see `code_changed()`)."""
    if not recorded:
        return ["the cache records no generator version (it was built by an older release)"]
    keys = sorted((set(recorded) | set(current)) - {"code"})
    return [
        f"{k}: cache {recorded.get(k)!r}, running {current.get(k)!r}"
        for k in keys
        if recorded.get(k) != current.get(k)
    ]


def code_changed(recorded: Mapping[str, Any] | None, current: Mapping[str, Any]) -> bool:
    """Whether the generator's code changed since a cache was built without `SYNTHESIS_VERSION`
    changing. That is a warning, not a refusal: most code changes (refactors, the build and check code in
    [`zoo.data.corpus`][zoo.data.corpus]) leave the corpus as it is, and only their author knows."""
    if not recorded:
        return False
    return recorded.get("code") != current.get("code")


def file_digest(path: str | Path) -> tuple[int, str]:
    """``(size in bytes, SHA-256 hex digest)`` of a file."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def file_problem(u: Utterance, full: bool = False) -> str | None:
    """What is wrong with the audio file of ``u`` (``None`` when nothing is).

    The cheap check compares the file's size with the manifest's; ``full`` also compares its SHA-256.
    """
    if not u.sha256 or u.file_size <= 0:
        return "the manifest records no size or hash for it"
    p = Path(u.path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        return "the file is missing"
    except OSError as e:
        return f"the file cannot be read ({e})"
    if size != u.file_size:
        return f"the file has {size} bytes, the manifest says {u.file_size}"
    if full:
        try:
            _, digest = file_digest(p)
        except OSError as e:
            return f"the file cannot be read ({e})"
        if digest != u.sha256:
            return "the file's content hash differs from the manifest's"
    return None


def damaged(utts: Iterable[Utterance], full: bool = False) -> dict[str, str]:
    """``{utterance id: problem}`` for every utterance whose audio file fails `file_problem()`."""
    out: dict[str, str] = {}
    for u in utts:
        why = file_problem(u, full)
        if why is not None:
            out[u.id] = why
    return out


__all__ = [
    "GENERATOR_MODULES",
    "SYNTHESIS_VERSION",
    "StaleCorpusError",
    "code_changed",
    "code_fingerprint",
    "damaged",
    "environment_versions",
    "file_digest",
    "file_problem",
    "generator_versions",
    "version_differences",
]
