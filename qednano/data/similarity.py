"""Problem text reduced to what survives a rewrite, and hashed once for every matcher.

Two statements of one problem differ in ways that do not change the problem: LaTeX spelling
(`\\frac{a}{b}` or `a/b`, `\\left(` or `(`, `$...$` or `\\(...\\)`), the names of variables
and points, the numbers that label items or years, the order of sentences, and common
rewordings ("show" for "prove"). `tokenize` maps all of those to one form: math delimiters
and sizing commands dropped, fractions written as `a / b`, names (single letters, capital
point names like `ABC`, Greek letters) numbered `<v1>`, `<v2>`, ... by first use within their
sentence, every number and item label read as `#`, stop words dropped and a few synonyms
merged. Numbering names per sentence keeps the shape of a formula (`f(x) = x` is not
`f(x) = y`) while renaming and reordering sentences change nothing.

`Hasher.fingerprint_many` hashes many texts at once: an exact key per text (its sentences
sorted) and its set of word n-grams (within sentences) as uint32 hashes computed with numpy.
The n-gram and MinHash matchers both read those hashes.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

NAME = "\x00"  # marks a variable or point name until tokenize numbers it within its sentence
NUMBER = "#"

GREEK = frozenset(
    "alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi pi "
    "varpi rho varrho sigma varsigma tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda Xi Pi "
    "Sigma Upsilon Phi Psi Omega".split()
)
# Commands that only size, space, decorate or set a font: dropped, their argument kept.
DROPPED = frozenset(
    r"\left \right \big \Big \bigg \Bigg \bigl \bigr \Bigl \Bigr \biggl \biggr \displaystyle \textstyle "
    r"\limits \nolimits \quad \qquad \mathrm \mathbf \mathit \mathbb \mathcal \mathfrak \boldsymbol \bm "
    r"\overline \underline \overrightarrow \vec \hat \widehat \bar \tilde \widetilde".split()
)
# Function names written without a backslash inside math (`gcd(a, b)`): words, not products of names.
FUNCTIONS = frozenset("sin cos tan cot log ln exp gcd lcm max min deg det mod lim sup inf arg sgn".split())
# Commands whose argument is words even inside math (`\begin{cases}` names no variables).
TEXT_COMMANDS = frozenset(r"\text \textbf \textit \textrm \mbox \operatorname \textup \begin \end \label".split())
FRACTIONS = frozenset(r"\frac \dfrac \tfrac \cfrac".split())
# Spellings of one symbol, written as their plain form.
SYMBOLS = {
    r"\leq": "<=", r"\le": "<=", r"\leqslant": "<=", r"\geq": ">=", r"\ge": ">=", r"\geqslant": ">=",
    r"\neq": "!=", r"\ne": "!=", r"\cdot": "*", r"\times": "*", r"\ast": "*", r"\ldots": "...",
    r"\cdots": "...", r"\dots": "...", r"\dotsc": "...", r"\mid": "|", r"\vert": "|", r"\lvert": "|",
    r"\rvert": "|", r"\to": "->", r"\rightarrow": "->", r"\lfloor": "floor", r"\rfloor": "floor",
    r"\lceil": "ceil", r"\rceil": "ceil", r"\triangle": "triangle", r"\bigtriangleup": "triangle",
}
# "Show" and "prove" ask the same; so do "determine" and "find". Merged, not exhaustive.
SYNONYMS = {
    "show": "prove", "demonstrate": "prove", "verify": "prove", "determine": "find", "compute": "find",
    "calculate": "find", "evaluate": "find", "identify": "find", "suppose": "let", "assume": "let",
    "consider": "let", "given": "let", "denote": "let", "holds": "hold", "satisfies": "satisfy",
    "satisfying": "satisfy", "exists": "exist", "whole": "integer", "greatest": "largest",
    "maximum": "largest", "maximal": "largest", "least": "smallest", "minimum": "smallest",
    "minimal": "smallest", "every": "all", "each": "all", "any": "all",
}
STOP_WORDS = frozenset(
    "the of that is be are a an and to in on for with by as at it its this these those then than "
    "so such which who whom whose there here from into onto we us our you your one some also "
    "following let all".split()
)
ROMAN = frozenset("ii iii iv vi vii viii ix xi xii".split())
# One scan of the raw text. Item labels ("(ii)", "3." at a line start) are numbers and start a
# sentence; a sentence also ends at . ? ! before a space, or at a blank line.
SCAN = re.compile(  # words first: they are most tokens, and the order of alternatives is the speed
    r"(?P<word>[A-Za-z]+)"
    r"|(?P<label>(?<![^\s])\((?:[ivx]{1,4}|[a-z]|\d{1,2})\)|(?m:^)[ \t]*\d{1,2}[.)](?=\s))"
    r"|(?P<math>\$\$?|\\[()\[\]])"
    r"|(?P<command>\\[A-Za-z]+|\\.)"
    r"|(?P<number>\d+(?:\.\d+)?)"
    r"|(?P<symbol><=|>=|!=|->|\.\.\.|≤|≥|≠|[+\-*/=<>^|!])"
    r"|(?P<open>\{)|(?P<close>\})"
    r"|(?P<end>[.?!](?=\s|$|\$|\\[)\]])|\n[ \t]*\n)"
)
PLAIN_SYMBOLS = {"≤": "<=", "≥": ">=", "≠": "!="}


@lru_cache(maxsize=1 << 16)
def _word(token: str) -> str | None:
    """The normalized form of a word outside math, or None for a stop word."""
    if token in ("a", "A"):
        return None  # the article; a variable named a is written in math
    if len(token) == 1 or token.isupper() and len(token) <= 4:
        return NAME + token  # a variable, or a point name: ABC, PQ
    word = token.lower()
    if word in ROMAN:
        return NUMBER
    word = SYNONYMS.get(word, word)
    if word in STOP_WORDS:
        return None
    if len(word) > 4 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]  # plurals: "integers" and "integer" are one word here
    return word


@lru_cache(maxsize=1 << 12)
def _command(command: str) -> str | None:
    """A TeX command as a token: a symbol's plain form, a name for Greek, None when it only decorates."""
    if command in SYMBOLS:
        return SYMBOLS[command]
    if command in DROPPED or len(command) < 3:
        return None
    return NAME + command if command[1:] in GREEK else command[1:].lower()


class _Reader:
    """The state of reading one text: its sentences so far, and where in the TeX we are."""

    def __init__(self) -> None:
        self.sentences: list[list[str]] = []
        self.words: list[str] = []
        self.names: dict[str, str] = {}  # this sentence's names, numbered by first use
        self.in_math = False
        self.depth = 0  # brace depth
        self.text_depth = 0  # brace depth of a \text{...} argument inside math (0: none)
        self.fraction_ends: list[int] = []  # brace depths at which a fraction's numerator closes
        self.expect_numerator = self.expect_text = self.period_in_math = self.after_math = False

    def end_sentence(self) -> None:
        if self.words:
            self.sentences.append(self.words)
        self.words, self.names = [], {}

    def name(self, token: str) -> str:
        """<v1>, <v2>, ... by first use in the sentence: renaming x to u changes nothing."""
        return self.names.setdefault(token.lstrip(NAME), f"<v{len(self.names) + 1}>")

    def add(self, word: str | None) -> None:
        if word is not None:
            self.words.append(self.name(word) if word[0] == NAME else word)

    def word(self, token: str) -> None:
        """A word inside math (outside, tokenize reads words itself)."""
        if self.text_depth:
            self.add(_word(token))
        elif token.isupper() and len(token) <= 4:
            self.words.append(self.name(token))  # a point or segment name: AB
        elif token in FUNCTIONS:
            self.words.append(token)
        else:
            self.words.extend(self.name(letter) for letter in token)  # `xyzt` in math is x times y times z times t

    def numerator(self, kind: str, token: str) -> None:
        """A fraction's one-token numerator (\frac12 is one number token holding both digits)."""
        self.expect_numerator = False
        if kind == "number":
            self.words.extend([NUMBER, "/", NUMBER] if len(token) == 2 else [NUMBER, "/"])
        else:
            self.words.extend([self.name(token), "/"])

    def brace(self, opens: bool) -> None:
        if opens:
            self.depth += 1
            if self.expect_numerator:
                self.fraction_ends.append(self.depth)
                self.expect_numerator = False
            if self.expect_text:
                self.text_depth, self.expect_text = self.depth, False
            return
        if self.fraction_ends and self.fraction_ends[-1] == self.depth:
            self.fraction_ends.pop()
            self.words.append("/")  # \frac{a}{b} reads as a / b
        if self.depth == self.text_depth:
            self.text_depth = 0
        self.depth = max(self.depth - 1, 0)

    def command(self, token: str) -> None:
        if token in FRACTIONS:
            self.expect_numerator = True
        elif token in TEXT_COMMANDS:
            self.expect_text = self.in_math
        else:
            self.add(_command(token))

    def math_delimiter(self, token: str) -> None:
        opens = token in ("$", "$$") and not self.in_math or token in (r"\(", r"\[")
        if self.in_math and not opens and (self.period_in_math or token in ("$$", r"\]")):
            self.end_sentence()  # "... = 9.$ Next": the full stop ended the sentence; so does displayed math
        self.in_math, self.period_in_math, self.after_math = opens, False, not opens

    def boundary(self, kind: str, token: str) -> None:
        """An item label or a sentence end (inside math, only a blank line ends one)."""
        if kind == "label" and self.in_math:
            self.words.append(NUMBER if token[1].isdigit() else self.name(token[1:-1]))  # $f (x)$: an argument
        elif kind == "end" and self.in_math and token == ".":
            self.period_in_math = True
        elif kind == "label" or not self.in_math or token[0] == "\n":
            self.in_math = self.in_math and token[0] != "\n"  # a blank line ends a stray math span
            self.end_sentence()
            if kind == "label":
                self.words.append(NUMBER)


def tokenize(text: str) -> list[list[str]]:
    """The sentences of `text` as lists of normalized tokens (empty sentences left out)."""
    reader = _Reader()
    for match in SCAN.finditer(text if text.isascii() else unicodedata.normalize("NFKC", text)):
        kind, token = match.lastgroup, match.group()
        if reader.after_math:
            reader.after_math = False
            if kind == "word" and token[0].isupper() and not token.isupper():
                reader.end_sentence()  # "... $x$ Find ...": a sentence that lacked its full stop
        if reader.expect_numerator and kind != "open":
            reader.numerator(kind, token)
        elif kind == "word":
            if reader.in_math:
                reader.word(token)
            elif (word := _word(token)) is not None:  # prose words, most tokens: no method call
                reader.words.append(reader.name(word) if word[0] == NAME else word)
        elif kind == "number":
            reader.words.append(NUMBER)
        elif kind == "symbol":
            reader.words.append(PLAIN_SYMBOLS.get(token, token))
        elif kind == "command":
            reader.command(token)
        elif kind == "open" or kind == "close":
            reader.brace(kind == "open")
        elif kind == "math":
            reader.math_delimiter(token)
        else:
            reader.boundary(kind, token)
    reader.end_sentence()
    return reader.sentences


class Hasher:
    """Hashes each vocabulary word once (blake2b) and every n-gram with numpy, many texts at a time.

    An n-gram is a window of n tokens inside one sentence; a sentence shorter than n is one
    window. Its hash is a fixed odd-multiplier combination of its token hashes, folded to 32
    bits (MinHash's "affine32" scheme takes 32-bit values).
    """

    def __init__(self, n: int):
        self.n = n
        self._vocabulary: dict[str, int] = {}
        self._multipliers = np.random.default_rng(20261127).integers(1, 2**63, size=n, dtype=np.uint64) | np.uint64(1)

    def _token_id(self, word: str) -> int:
        found = self._vocabulary.get(word)
        if found is None:
            found = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
            self._vocabulary[word] = found
        return found

    def fingerprint_many(self, texts: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(exact keys, the unique n-gram hashes of all texts one after another, count per text)."""
        keys: list[str] = []
        ids: list[int] = []
        sentence_lengths: list[int] = []
        sentences_per_text: list[int] = []
        for text in texts:
            sentences = tokenize(text)
            keys.append(exact_key(sentences))
            sentences_per_text.append(len(sentences))
            vocabulary = self._vocabulary
            for sentence in sentences:
                sentence_lengths.append(len(sentence))
                ids.extend([vocabulary[w] if w in vocabulary else self._token_id(w) for w in sentence])
        lengths = np.array(sentence_lengths, dtype=np.int64)
        text_of_sentence = np.repeat(np.arange(len(texts)), sentences_per_text)
        hashes, sentence = self._windows(np.array(ids, dtype=np.uint64), lengths)
        # Unique per text: sort (text, hash) pairs as one 64-bit number.
        combined = sorted_unique((text_of_sentence[sentence].astype(np.uint64) << np.uint64(32)) | hashes.astype(np.uint64))
        counts = np.bincount((combined >> np.uint64(32)).astype(np.int64), minlength=len(texts))
        return keys, (combined & np.uint64(0xFFFFFFFF)).astype(np.uint32), counts

    def _windows(self, ids: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """32-bit hashes of all n-gram windows and the sentence each lies in."""
        n = self.n
        sentence_of = np.repeat(np.arange(len(lengths)), lengths)
        starts = np.cumsum(lengths) - lengths
        position = np.arange(ids.size) - starts[sentence_of]
        # Full windows: every start whose window ends in the same sentence.
        full = np.zeros(max(ids.size - n + 1, 0), dtype=np.uint64)
        for k in range(n):
            full += ids[k : k + full.size] * self._multipliers[k]
        valid = sentence_of[: full.size] == sentence_of[n - 1 : n - 1 + full.size]
        # Short sentences: one window of all their tokens.
        short = lengths[sentence_of] < n
        weighted = ids[short] * self._multipliers[position[short]]
        short_sentences = np.flatnonzero(lengths < n)
        offsets = np.cumsum(lengths[short_sentences]) - lengths[short_sentences]
        short_hashes = np.add.reduceat(weighted, offsets) if weighted.size else weighted
        hashes = np.concatenate([full[valid], short_hashes])
        where = np.concatenate([sentence_of[: full.size][valid], short_sentences])
        return (hashes ^ (hashes >> np.uint64(32))).astype(np.uint32), where


def exact_key(sentences: Sequence[Sequence[str]]) -> str:
    """A hash of the normalized sentences in sorted order: reordering them keeps the key."""
    return hashlib.blake2b("\n".join(sorted(" ".join(s) for s in sentences)).encode(), digest_size=16).hexdigest()


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """The distinct values, sorted (np.unique's hash-based path is slower on these arrays)."""
    values = np.sort(values)
    return values[np.concatenate(([True], values[1:] != values[:-1]))] if values.size else values
