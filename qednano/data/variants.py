"""Rewrites of a problem statement that leave the problem unchanged: planted near-duplicates.

Decontamination must catch a benchmark problem that reached the training data in another
form. These functions make such forms from a statement, deterministically, so that tests and
benchmarks can plant them and check that every one is found:

- `reword`: common phrases said another way, and a sentence of framing added;
- `renumber`: a problem number put in front, item labels (i), (ii) written as 1., 2., and every
  number in the prose changed;
- `rename`: the letters that name variables and points swapped for others;
- `reformat_latex`: `$..$` as `\\(..\\)`, fractions as slashes, `\\left( \\right)` around brackets,
  other spellings of relations and products;
- `reorder`: the sentences in reverse order.

`everything` (VARIANTS["all"]) applies every one at once. The phrase list is our own; the
normalizer merges a few of its pairs (show/prove, determine/find) and not the rest ("positive
whole numbers", "how many", "work out", "so that"), which overlap has to catch.
"""

from __future__ import annotations

import re
from collections.abc import Callable

PHRASES = (
    ("Prove that", "Show that"), ("prove that", "show that"), ("Find all", "Determine every"),
    ("Find the", "Work out the"), ("Determine", "Find"), ("such that", "so that"),
    ("positive integers", "positive whole numbers"), ("real numbers", "reals"), ("Let ", "Suppose "),
    ("Compute", "Calculate"), ("the number of", "how many"), ("there exists", "there is"),
    ("for all", "for every"), ("Suppose that", "Assume"),
)
FRAMING = "Here is a problem from a competition. "
DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\[", "\\]"), ("\\(", "\\)"))
MATH = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\[(.+?)\\\]|\\\((.+?)\\\)", re.DOTALL)  # one group per pair above
SPANS = re.compile(r"(\$\$.+?\$\$|\$.+?\$|\\\[.+?\\\]|\\\(.+?\\\))", re.DOTALL)  # split() keeps them
SENTENCE = re.compile(r"(?<=[.?!])\s+(?=[A-Z$\\])")
RENAMES = str.maketrans("abcdefghkmnpqrstuvwxyzABCDEFGHKLMNPQRSTXYZ", "pqrstuvwxyzabcdefghkmnXYZPQRSTABCDEFGHKLMN")
LATEX_SPELLINGS = ((r"\\leq(?![a-z])", r"\\le "), (r"\\geq(?![a-z])", r"\\ge "), (r"\\cdot(?![a-z])", r"\\times "), (r"\\ldots", r"\\dots "))


def reword(statement: str) -> str:
    for old, new in PHRASES:
        statement = statement.replace(old, new)
    return FRAMING + statement


def renumber(statement: str) -> str:
    """A problem number in front, item labels as numbers, numbers in the prose shifted by one."""
    labels = iter(range(1, 100))
    statement = re.sub(r"\((?:i{1,3}|iv|v|vi{1,3})\)|(?m:^)\((?:[a-h])\)", lambda m: f"{next(labels)}.", statement)
    outside = SPANS.split(statement)
    for i in range(0, len(outside), 2):  # even parts are outside math
        outside[i] = re.sub(r"\d+", lambda m: str(int(m.group()) + 1), outside[i])
    return "Problem 7. " + "".join(outside)


def _in_math(statement: str, change: Callable[[str], str]) -> str:
    """`statement` with `change` applied to the inside of every math span, delimiters kept."""
    def rewrite(match: re.Match) -> str:
        (opening, closing), body = next((pair, body) for pair, body in zip(DELIMITERS, match.groups(), strict=True) if body is not None)
        return opening + change(body) + closing

    return MATH.sub(rewrite, statement)


def rename(statement: str) -> str:
    """Variable and point letters swapped inside math (TeX commands left alone)."""

    def swap(body: str) -> str:
        # Commands, their text arguments and function names (gcd, max) stay as they are.
        return re.sub(
            r"(\\(?:operatorname|text|mathrm|begin|end)\{[^}]*\}|\\[A-Za-z]+|\b(?:gcd|lcm|max|min|sin|cos|tan|log|ln|exp|deg|mod)\b)|([A-Za-z]+)",
            lambda m: m.group(1) or m.group(2).translate(RENAMES),
            body,
        )

    # Point names written outside math ("triangle ABC") change too.
    parts = SPANS.split(statement)
    for i in range(0, len(parts), 2):  # even parts are outside math
        parts[i] = re.sub(r"\b[A-Z]{2,4}\b", lambda m: m.group().translate(RENAMES), parts[i])
    return _in_math("".join(parts), swap)


def reformat_latex(statement: str) -> str:
    def respell(body: str) -> str:
        body = re.sub(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}", r"(\1)/(\2)", body)
        body = re.sub(r"\\left\(|\(", r"\\left(", body)
        body = re.sub(r"\\right\)|\)", r"\\right)", body)
        for old, new in LATEX_SPELLINGS:
            body = re.sub(old, new, body)
        return body

    statement = _in_math(statement, respell)
    statement = re.sub(r"\$\$(.+?)\$\$", r"\\[\1\\]", statement, flags=re.DOTALL)
    return re.sub(r"\$(.+?)\$", r"\\(\1\\)", statement, flags=re.DOTALL)


def reorder(statement: str) -> str:
    """Sentences in reverse order; a full stop inside math does not end a sentence."""
    parts = SPANS.split(statement.strip())
    sentences, current = [], ""
    for i, part in enumerate(parts):
        pieces = [part] if i % 2 else SENTENCE.split(part)  # odd parts are math
        current += pieces[0]
        for piece in pieces[1:]:
            sentences.append(current.strip())
            current = piece
    sentences.append(current.strip())
    return " ".join(reversed([s for s in sentences if s]))


def everything(statement: str) -> str:
    return reformat_latex(rename(reorder(renumber(reword(statement)))))


def _keeping_dollar_signs(rewrite: Callable[[str], str]) -> Callable[[str], str]:
    """`rewrite` with escaped dollar signs (\\$5) hidden, so they are not read as math."""

    def wrapped(statement: str) -> str:
        return rewrite(statement.replace("\\$", "\x01")).replace("\x01", "\\$")

    return wrapped


VARIANTS: dict[str, Callable[[str], str]] = {
    name: _keeping_dollar_signs(rewrite)
    for name, rewrite in (
        ("reworded", reword),
        ("renumbered", renumber),
        ("renamed", rename),
        ("latex", reformat_latex),
        ("reordered", reorder),
        ("all", everything),
    )
}
