"""Text content of the generated corpus: numbers, quantities, small-vocabulary sentences and person names.

Every item is a `Phrase` with the text spoken in its language (``spoken``), the normalised
transcript (the recognition target) and the English rendering (the X→en translation target).

Four kinds of content, all in English, French, German, Spanish, Italian and Portuguese:

* ``number``: a cardinal number written out with ``num2words`` (``"trois cent quarante-deux"`` →
  ``"three hundred and forty-two"``);
* ``quantity``: a cardinal ≥ 2 and a plural noun (``"vingt-trois livres"`` → ``"twenty-three books"``);
  numbers whose Spanish form would need apocope (``veintiún``) are not drawn for Spanish;
* ``sentence``: one of a few templates filled from a small vocabulary with gender and case agreement
  (``"la maison est blanche"`` → ``"the house is white"``);
* ``name``: open vocabulary: a first and a last name from the person-name lists of the language's
  ``faker`` locale (``en_US``, ``fr_FR``, ``de_DE``, ``es_ES``, ``it_IT``, ``pt_PT``; the lists ship
  with the package, nothing is downloaded) in a carrier phrase (``"je m'appelle Adrien Bernard"`` →
  ``"my name is adrien bernard"``). Proper names translate to themselves, so the X→en target is exact;
  a general word list would need a bilingual dictionary for that. Only single-word names whose letters
  the language's other kinds already use (plus a–z) and which are not words of the other kinds are
  kept, some 200–2000 first and 100–1100 last names per language.

Held-out names: `held_out_words()` sets aside a fixed share of each language's name words by a hash of
the word (independent of seed, corpus size and order), so that a corpus can train on the other names
and test on names that no training utterance contains (``names="held_out"`` in `random_phrase()`).

Normalisation (`normalize()`): Unicode NFC, lower case, hyphens and en/em dashes become spaces, every
character that is neither a letter, a digit, an apostrophe nor a space is dropped, typographic
apostrophes become ``'``, runs of white space collapse to one space, and the ends are stripped. Accents
are kept (``"où"`` stays ``"où"``).
"""

from __future__ import annotations

import hashlib
import importlib
import re
import unicodedata
from dataclasses import dataclass
from functools import cache

import numpy as np

LANGUAGES: tuple[str, ...] = ("en", "fr", "de", "es", "it", "pt")
KINDS: tuple[str, ...] = ("number", "quantity", "sentence", "name")

#: The ``faker`` locale whose person names the ``name`` kind draws in each language.
FAKER_LOCALE: dict[str, str] = {
    "en": "en_US",
    "fr": "fr_FR",
    "de": "de_DE",
    "es": "es_ES",
    "it": "it_IT",
    "pt": "pt_PT",
}

#: Share of each language's name words held out of training (see `held_out_words()`).
HELD_OUT_SHARE = 0.2

#: ``name`` carrier phrases: (spoken in the language, English), ``{}`` is the full name.
_NAME_TEMPLATES: dict[str, tuple[tuple[str, str], ...]] = {
    "en": (("my name is {}", "my name is {}"), ("{} is here", "{} is here"), ("call {}", "call {}")),
    "fr": (("je m'appelle {}", "my name is {}"), ("{} est ici", "{} is here"), ("appelle {}", "call {}")),
    "de": (("ich heiße {}", "my name is {}"), ("{} ist hier", "{} is here"), ("ruf {} an", "call {}")),
    "es": (("me llamo {}", "my name is {}"), ("{} está aquí", "{} is here"), ("llama a {}", "call {}")),
    "it": (("mi chiamo {}", "my name is {}"), ("{} è qui", "{} is here"), ("chiama {}", "call {}")),
    "pt": (("o meu nome é {}", "my name is {}"), ("{} está aqui", "{} is here"), ("liga para {}", "call {}")),
}

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
    first, last = name_lists(language)
    words = set(_closed_vocabulary(language)) | set(first) | set(last)
    for spoken, _ in _NAME_TEMPLATES[language]:
        words |= set(normalize(spoken.format("")).split())
    return sorted(words)


@cache
def _closed_vocabulary(language: str, all_numbers: bool = True) -> frozenset[str]:
    """The words of the number, quantity and sentence kinds; without ``all_numbers``, of the numbers up to
    100 and the hundreds only (a tenth of the cost: the name filter runs in every corpus worker, and a
    name never equals a compound such as ``"dreihundertzwei"``)."""
    check_language(language)
    words: set[str] = set()
    numbers = range(1000) if all_numbers else [*range(101), *range(200, 1000, 100)]
    for n in numbers:
        words |= set(normalize(number_words(n, language)).split())
    for p in _PLURALS:
        words |= set(normalize(p[language]).split())
    for t in range(3):
        for noun in _NOUNS:
            for adj in _ADJECTIVES:
                words |= set(normalize(_sentence(language, t, noun, adj)).split())
    return frozenset(words)


@cache
def name_lists(language: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(first names, last names)`` of ``language``: the ``faker`` locale's lists (`FAKER_LOCALE`),
    normalised, single words only, letters of the language's other kinds or a–z only, words of the other
    kinds and of the carrier phrases left out; sorted and distinct (so the order in the package does not
    matter)."""
    check_language(language)
    person = importlib.import_module(f"faker.providers.person.{FAKER_LOCALE[language]}").Provider
    closed = _closed_vocabulary(language, all_numbers=False)
    carrier = {
        w
        for sp, en in _NAME_TEMPLATES[language]
        for w in normalize(sp.format("") + " " + en.format("")).split()
    }
    letters = set("abcdefghijklmnopqrstuvwxyz") | {c for w in closed for c in w}

    def keep(names: object) -> tuple[str, ...]:
        out = set()
        for raw in names:  # type: ignore[attr-defined]
            w = normalize(str(raw))
            if len(w) >= 2 and " " not in w and set(w) <= letters and w not in closed and w not in carrier:
                out.add(w)
        return tuple(sorted(out))

    first = keep(
        list(getattr(person, "first_names_male", ())) + list(getattr(person, "first_names_female", ()))
        or list(person.first_names)
    )
    last = tuple(w for w in keep(person.last_names) if w not in first)
    return first, last


def is_held_out(word: str, language: str) -> bool:
    """Whether the name word ``word`` of ``language`` belongs to the held-out set: the first 8 bytes of
    SHA-256 of ``"<language>:<word>"`` fall in the lowest `HELD_OUT_SHARE` of their range."""
    h = int.from_bytes(hashlib.sha256(f"{language}:{word}".encode()).digest()[:8], "big")
    return h < HELD_OUT_SHARE * 2**64


@cache
def held_out_words(language: str) -> frozenset[str]:
    """The name words of ``language`` that corpus training splits never contain (see `is_held_out()`)."""
    first, last = name_lists(language)
    return frozenset(w for w in first + last if is_held_out(w, language))


def _name_pools(language: str, held_out: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    first, last = name_lists(language)
    pick = lambda ws: tuple(w for w in ws if is_held_out(w, language) == held_out)  # noqa: E731
    return pick(first), pick(last)


def _display(word: str) -> str:
    """A name as written (capitalised parts) for the synthesiser."""
    return "-".join(p[:1].upper() + p[1:] for p in word.split("-"))


def _quantity_ok(n: int, language: str) -> bool:
    # Spanish "veintiuno libros" must be "veintiún libros": skip those numbers rather than mis-inflect.
    return not (language == "es" and n % 10 == 1 and n % 100 != 11)


def random_phrase(
    language: str,
    rng: np.random.Generator,
    kind: str | None = None,
    kind_weights: tuple[float, ...] = (0.3, 0.3, 0.4, 0.0),
    max_number: int = 999,
    names: str = "seen",
) -> Phrase:
    """Draw one phrase in ``language`` from ``rng``.

    Args:
        language: one of `LANGUAGES`.
        rng: a numpy ``Generator``; the draw is a pure function of its state.
        kind: one of `KINDS` or ``None`` to draw it with ``kind_weights``.
        kind_weights: probabilities of the four kinds when ``kind`` is ``None`` (three weights are the
            number, quantity and sentence kinds without names).
        max_number: largest cardinal drawn for numbers and quantities.
        names: for the ``name`` kind, draw from the names outside `held_out_words()` (``"seen"``) or
            from the held-out ones (``"held_out"``).
    """
    check_language(language)
    if names not in ("seen", "held_out"):
        raise ValueError(f"names must be 'seen' or 'held_out', got {names!r}")
    if kind is None:
        w = np.asarray(kind_weights, dtype=float)
        if w.shape == (3,):
            w = np.append(w, 0.0)
        if w.shape != (4,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError(
                f"kind_weights must be 4 non-negative numbers (number, quantity, sentence, name), got "
                f"{kind_weights!r}"
            )
        kind = KINDS[int(rng.choice(4, p=w / w.sum()))]
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    if max_number < 2:
        raise ValueError(f"max_number must be >= 2, got {max_number}")
    if kind == "name":
        first, last = _name_pools(language, names == "held_out")
        full = (
            f"{_display(first[int(rng.integers(len(first)))])} {_display(last[int(rng.integers(len(last)))])}"
        )
        spoken_t, english_t = _NAME_TEMPLATES[language][int(rng.integers(len(_NAME_TEMPLATES[language])))]
        spoken, english = spoken_t.format(full), english_t.format(full)
    elif kind == "number":
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
