"""Text content of the generated corpus: number phrases, quantity phrases and small-vocabulary sentences.

Every item is a `Phrase` with the text spoken in its language (``spoken``), the normalised
transcript (the recognition target) and the English rendering (the X→en translation target).

Three kinds of content, all in English, French, German, Spanish, Italian and Portuguese:

* ``number``: a cardinal number written out with ``num2words`` (``"trois cent quarante-deux"`` →
  ``"three hundred and forty-two"``);
* ``quantity``: a cardinal ≥ 2 and a plural noun (``"vingt-trois livres"`` → ``"twenty-three books"``);
  numbers whose Spanish form would need apocope (``veintiún``) are not drawn for Spanish;
* ``sentence``: one of a few templates filled from a small vocabulary with gender and case agreement
  (``"la maison est blanche"`` → ``"the house is white"``).

Normalisation (`normalize()`): Unicode NFC, lower case, hyphens and en/em dashes become spaces, every
character that is neither a letter, a digit, an apostrophe nor a space is dropped, typographic
apostrophes become ``'``, runs of white space collapse to one space, and the ends are stripped. Accents
are kept (``"où"`` stays ``"où"``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np

LANGUAGES: tuple[str, ...] = ("en", "fr", "de", "es", "it", "pt")
KINDS: tuple[str, ...] = ("number", "quantity", "sentence")

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "`": "'"})
_DASHES = re.compile(r"[-‐‑‒–—]")
_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Normalise ``text`` for use as a recognition or translation target (see the module docstring).

    >>> normalize("Vingt-Trois  livres, s'il vous plaît!")
    "vingt trois livres s'il vous plaît"
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    t = unicodedata.normalize("NFC", text).lower().translate(_APOSTROPHES)
    t = _DASHES.sub(" ", t)
    t = "".join(c if (c.isalnum() or c in "' " or c.isspace()) else " " for c in t)
    return _SPACES.sub(" ", t).strip()


@dataclass(frozen=True)
class Phrase:
    """One text item: what is spoken, its normalised transcript and its English translation.

    Attributes:
        language: ISO 639-1 code of the spoken language.
        kind: ``"number"``, ``"quantity"`` or ``"sentence"``.
        spoken: the text given to the synthesiser (orthographic, unnormalised).
        transcript: ``normalize(spoken)``, the recognition target.
        translation: the normalised English rendering, the translation target (equal to the transcript
            for English).
    """

    language: str
    kind: str
    spoken: str
    transcript: str
    translation: str


def check_language(language: str) -> str:
    """Return ``language`` if it is one of `LANGUAGES`, else raise a ``ValueError`` naming it."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; expected one of {', '.join(LANGUAGES)}")
    return language


def number_words(n: int, language: str) -> str:
    """``n`` written out in ``language`` with ``num2words`` (commas dropped, as spoken)."""
    from num2words import num2words

    check_language(language)
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    return str(num2words(int(n), lang=language)).replace(",", "")


# ---------------------------------------------------------------------------------------------------
# Vocabulary. Nouns: English, then per language (article + noun, grammatical gender); German also has
# the accusative form. Genders: "m" / "f" (German "n" is irrelevant: predicate adjectives do not inflect).
# ---------------------------------------------------------------------------------------------------

_NOUNS: tuple[dict[str, tuple[str, str]], ...] = (
    {
        "en": ("the cat", ""),
        "fr": ("le chat", "m"),
        "de": ("die Katze", "die Katze"),
        "es": ("el gato", "m"),
        "it": ("il gatto", "m"),
        "pt": ("o gato", "m"),
    },
    {
        "en": ("the dog", ""),
        "fr": ("le chien", "m"),
        "de": ("der Hund", "den Hund"),
        "es": ("el perro", "m"),
        "it": ("il cane", "m"),
        "pt": ("o cão", "m"),
    },
    {
        "en": ("the house", ""),
        "fr": ("la maison", "f"),
        "de": ("das Haus", "das Haus"),
        "es": ("la casa", "f"),
        "it": ("la casa", "f"),
        "pt": ("a casa", "f"),
    },
    {
        "en": ("the car", ""),
        "fr": ("la voiture", "f"),
        "de": ("das Auto", "das Auto"),
        "es": ("el coche", "m"),
        "it": ("la macchina", "f"),
        "pt": ("o carro", "m"),
    },
    {
        "en": ("the book", ""),
        "fr": ("le livre", "m"),
        "de": ("das Buch", "das Buch"),
        "es": ("el libro", "m"),
        "it": ("il libro", "m"),
        "pt": ("o livro", "m"),
    },
    {
        "en": ("the table", ""),
        "fr": ("la table", "f"),
        "de": ("der Tisch", "den Tisch"),
        "es": ("la mesa", "f"),
        "it": ("il tavolo", "m"),
        "pt": ("a mesa", "f"),
    },
    {
        "en": ("the window", ""),
        "fr": ("la fenêtre", "f"),
        "de": ("das Fenster", "das Fenster"),
        "es": ("la ventana", "f"),
        "it": ("la finestra", "f"),
        "pt": ("a janela", "f"),
    },
    {
        "en": ("the bird", ""),
        "fr": ("l'oiseau", "m"),
        "de": ("der Vogel", "den Vogel"),
        "es": ("el pájaro", "m"),
        "it": ("l'uccello", "m"),
        "pt": ("o pássaro", "m"),
    },
    {
        "en": ("the tree", ""),
        "fr": ("l'arbre", "m"),
        "de": ("der Baum", "den Baum"),
        "es": ("el árbol", "m"),
        "it": ("l'albero", "m"),
        "pt": ("a árvore", "f"),
    },
    {
        "en": ("the door", ""),
        "fr": ("la porte", "f"),
        "de": ("die Tür", "die Tür"),
        "es": ("la puerta", "f"),
        "it": ("la porta", "f"),
        "pt": ("a porta", "f"),
    },
    {
        "en": ("the apple", ""),
        "fr": ("la pomme", "f"),
        "de": ("der Apfel", "den Apfel"),
        "es": ("la manzana", "f"),
        "it": ("la mela", "f"),
        "pt": ("a maçã", "f"),
    },
    {
        "en": ("the child", ""),
        "fr": ("l'enfant", "m"),
        "de": ("das Kind", "das Kind"),
        "es": ("el niño", "m"),
        "it": ("il bambino", "m"),
        "pt": ("a criança", "f"),
    },
    {
        "en": ("the city", ""),
        "fr": ("la ville", "f"),
        "de": ("die Stadt", "die Stadt"),
        "es": ("la ciudad", "f"),
        "it": ("la città", "f"),
        "pt": ("a cidade", "f"),
    },
    {
        "en": ("the horse", ""),
        "fr": ("le cheval", "m"),
        "de": ("das Pferd", "das Pferd"),
        "es": ("el caballo", "m"),
        "it": ("il cavallo", "m"),
        "pt": ("o cavalo", "m"),
    },
    {
        "en": ("the river", ""),
        "fr": ("la rivière", "f"),
        "de": ("der Fluss", "den Fluss"),
        "es": ("el río", "m"),
        "it": ("il fiume", "m"),
        "pt": ("o rio", "m"),
    },
    {
        "en": ("the letter", ""),
        "fr": ("la lettre", "f"),
        "de": ("der Brief", "den Brief"),
        "es": ("la carta", "f"),
        "it": ("la lettera", "f"),
        "pt": ("a carta", "f"),
    },
)

# Adjectives: English, then (masculine, feminine) per language; German predicate form twice.
_ADJECTIVES: tuple[dict[str, tuple[str, str]], ...] = (
    {
        "en": ("big", "big"),
        "fr": ("grand", "grande"),
        "de": ("groß", "groß"),
        "es": ("grande", "grande"),
        "it": ("grande", "grande"),
        "pt": ("grande", "grande"),
    },
    {
        "en": ("small", "small"),
        "fr": ("petit", "petite"),
        "de": ("klein", "klein"),
        "es": ("pequeño", "pequeña"),
        "it": ("piccolo", "piccola"),
        "pt": ("pequeno", "pequena"),
    },
    {
        "en": ("red", "red"),
        "fr": ("rouge", "rouge"),
        "de": ("rot", "rot"),
        "es": ("rojo", "roja"),
        "it": ("rosso", "rossa"),
        "pt": ("vermelho", "vermelha"),
    },
    {
        "en": ("old", "old"),
        "fr": ("vieux", "vieille"),
        "de": ("alt", "alt"),
        "es": ("viejo", "vieja"),
        "it": ("vecchio", "vecchia"),
        "pt": ("velho", "velha"),
    },
    {
        "en": ("new", "new"),
        "fr": ("nouveau", "nouvelle"),
        "de": ("neu", "neu"),
        "es": ("nuevo", "nueva"),
        "it": ("nuovo", "nuova"),
        "pt": ("novo", "nova"),
    },
    {
        "en": ("black", "black"),
        "fr": ("noir", "noire"),
        "de": ("schwarz", "schwarz"),
        "es": ("negro", "negra"),
        "it": ("nero", "nera"),
        "pt": ("preto", "preta"),
    },
    {
        "en": ("white", "white"),
        "fr": ("blanc", "blanche"),
        "de": ("weiß", "weiß"),
        "es": ("blanco", "blanca"),
        "it": ("bianco", "bianca"),
        "pt": ("branco", "branca"),
    },
    {
        "en": ("beautiful", "beautiful"),
        "fr": ("beau", "belle"),
        "de": ("schön", "schön"),
        "es": ("bonito", "bonita"),
        "it": ("bello", "bella"),
        "pt": ("bonito", "bonita"),
    },
    {
        "en": ("green", "green"),
        "fr": ("vert", "verte"),
        "de": ("grün", "grün"),
        "es": ("verde", "verde"),
        "it": ("verde", "verde"),
        "pt": ("verde", "verde"),
    },
)

# Plural nouns for quantities (masculine where the language has gender, so cardinals agree).
_PLURALS: tuple[dict[str, str], ...] = (
    {"en": "books", "fr": "livres", "de": "Bücher", "es": "libros", "it": "libri", "pt": "livros"},
    {"en": "days", "fr": "jours", "de": "Tage", "es": "días", "it": "giorni", "pt": "dias"},
    {"en": "years", "fr": "ans", "de": "Jahre", "es": "años", "it": "anni", "pt": "anos"},
    {"en": "euros", "fr": "euros", "de": "Euro", "es": "euros", "it": "euro", "pt": "euros"},
    {
        "en": "kilometres",
        "fr": "kilomètres",
        "de": "Kilometer",
        "es": "kilómetros",
        "it": "chilometri",
        "pt": "quilómetros",
    },
    {"en": "cats", "fr": "chats", "de": "Katzen", "es": "gatos", "it": "gatti", "pt": "gatos"},
    {"en": "dogs", "fr": "chiens", "de": "Hunde", "es": "perros", "it": "cani", "pt": "cães"},
    {"en": "birds", "fr": "oiseaux", "de": "Vögel", "es": "pájaros", "it": "uccelli", "pt": "pássaros"},
)


def _sentence(
    language: str, template: int, noun: dict[str, tuple[str, str]], adj: dict[str, tuple[str, str]]
) -> str:
    form, gender = noun[language]  # German: (nominative, accusative); others: (form, gender)
    a = adj[language][1 if gender == "f" else 0]
    if template == 0:  # "<noun> is <adj>"
        verb = {"en": "is", "fr": "est", "de": "ist", "es": "es", "it": "è", "pt": "é"}[language]
        return f"{form} {verb} {a}"
    if template == 1:  # "I have <noun>"
        obj = gender if language == "de" else form  # German object takes the accusative
        pre = {"en": "I have", "fr": "j'ai", "de": "ich habe", "es": "tengo", "it": "ho", "pt": "tenho"}
        return f"{pre[language]} {obj}"
    # "where is <noun>"
    pre = {
        "en": "where is",
        "fr": "où est",
        "de": "wo ist",
        "es": "dónde está",
        "it": "dov'è",
        "pt": "onde está",
    }
    return f"{pre[language]} {form}"


def vocabulary(language: str) -> list[str]:
    """The set of normalised words that `random_phrase()` can produce in ``language``, sorted."""
    check_language(language)
    words: set[str] = set()
    for n in range(0, 1000):
        words |= set(normalize(number_words(n, language)).split())
    for p in _PLURALS:
        words |= set(normalize(p[language]).split())
    for t in range(3):
        for noun in _NOUNS:
            for adj in _ADJECTIVES:
                words |= set(normalize(_sentence(language, t, noun, adj)).split())
    return sorted(words)


def _quantity_ok(n: int, language: str) -> bool:
    # Spanish "veintiuno libros" must be "veintiún libros": skip those numbers rather than mis-inflect.
    return not (language == "es" and n % 10 == 1 and n % 100 != 11)


def random_phrase(
    language: str,
    rng: np.random.Generator,
    kind: str | None = None,
    kind_weights: tuple[float, float, float] = (0.3, 0.3, 0.4),
    max_number: int = 999,
) -> Phrase:
    """Draw one phrase in ``language`` from ``rng``.

    Args:
        language: one of `LANGUAGES`.
        rng: a numpy ``Generator``; the draw is a pure function of its state.
        kind: ``"number"``, ``"quantity"``, ``"sentence"`` or ``None`` to draw it with ``kind_weights``.
        kind_weights: probabilities of the three kinds when ``kind`` is ``None``.
        max_number: largest cardinal drawn for numbers and quantities.
    """
    check_language(language)
    if kind is None:
        w = np.asarray(kind_weights, dtype=float)
        if w.shape != (3,) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"kind_weights must be 3 non-negative numbers, got {kind_weights!r}")
        kind = KINDS[int(rng.choice(3, p=w / w.sum()))]
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    if max_number < 2:
        raise ValueError(f"max_number must be >= 2, got {max_number}")
    if kind == "number":
        n = int(rng.integers(0, max_number + 1))
        spoken, english = number_words(n, language), number_words(n, "en")
    elif kind == "quantity":
        while True:
            n = int(rng.integers(2, max_number + 1))
            if _quantity_ok(n, language):
                break
        p = _PLURALS[int(rng.integers(len(_PLURALS)))]
        spoken = f"{number_words(n, language)} {p[language]}"
        english = f"{number_words(n, 'en')} {p['en']}"
    else:
        t = int(rng.integers(3))
        noun = _NOUNS[int(rng.integers(len(_NOUNS)))]
        adj = _ADJECTIVES[int(rng.integers(len(_ADJECTIVES)))]
        spoken, english = _sentence(language, t, noun, adj), _sentence("en", t, noun, adj)
    return Phrase(language, kind, spoken, normalize(spoken), normalize(english))


def phrase_from_text(text: str, language: str, translation: str | None = None) -> Phrase:
    """Wrap user text as a `Phrase` (kind ``"custom"``); raises ``ValueError`` when it is empty."""
    check_language(language)
    t = normalize(text)
    if not t:
        raise ValueError(f"text {text!r} is empty after normalisation")
    tr = normalize(translation) if translation is not None else (t if language == "en" else "")
    return Phrase(language, "custom", text, t, tr)
