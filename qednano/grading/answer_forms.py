"""Equal answers written in different forms, brought to one form before math-verify compares them.

math-verify compares values, not notations: it does not see that `0 < x \\le 1` is the interval
`(0,1]`, that `\\frac{-1\\pm\\sqrt{17}}{2}` is the list of both roots, that `90^\\circ` is
`\\frac{\\pi}{2}`, and it keeps words it should drop (`29 \\text{ ways}`, `AD = 26`). Each rule
here rewrites one such form into the one math-verify reads; `rounded` says when a decimal stands
in for an exact value, which a contest would not accept unless the problem asks for a decimal.
"""

from __future__ import annotations

import re
from fractions import Fraction

_UNIT = re.compile(r"^(.*?\d)\s*(?:\\(?:text|textrm|mathrm|mbox)\s*\{\s*[A-Za-z][A-Za-z .]*\}|\s[A-Za-z]{2,}(?: [A-Za-z]+)*)\s*$")
_LABEL = re.compile(r"^\s*[A-Za-z][A-Za-z0-9]*(?:_\{?\w+\}?)?\s*=\s*([^=]+)$")
_DEGREE = re.compile(r"\^\s*\{?\\circ\}?|\\degree|°|\s*\\text\{\s*degrees?\s*\}")
_NUMBER = r"(-?[\w\\{}.+\-^]+?)"
LE, LT, GE, GT = r"(?:\\le(?:q)?|≤)", r"<", r"(?:\\ge(?:q)?|≥)", r">"
_BETWEEN = re.compile(rf"^\s*{_NUMBER}\s*({LE}|{LT})\s*[a-z]\s*({LE}|{LT})\s*{_NUMBER}\s*$")
_ONE_SIDE = re.compile(rf"^\s*[a-z]\s*({LE}|{LT}|{GE}|{GT})\s*{_NUMBER}\s*$")
DECIMAL_WORDS = re.compile(r"decimal|nearest|round|approximat|significant", re.IGNORECASE)


def drop_units(answer: str) -> str:
    """`29 \\text{ ways}`, `12 cm` -> the number alone (angle units are kept for `angles`)."""
    if _DEGREE.search(answer):
        return answer
    match = _UNIT.match(answer.strip())
    return match.group(1) if match else answer


def drop_label(answer: str) -> str:
    """`AD = 26`, `n = 5` -> the value after the one equals sign."""
    match = _LABEL.match(answer)
    return match.group(1).strip() if match else answer


def expand_plus_minus(answer: str) -> str:
    """`a \\pm b` -> the list `a + b, a - b` (`\\mp` gives the opposite signs)."""
    if "\\pm" not in answer and "\\mp" not in answer:
        return answer
    plus = answer.replace("\\pm", "+").replace("\\mp", "-")
    minus = answer.replace("\\pm", "-").replace("\\mp", "+")
    return f"{plus}, {minus}"


def as_interval(answer: str) -> str:
    """`0 < x \\le 1` -> `(0,1]`; `x \\geq 2` -> `[2,\\infty)`; other answers unchanged."""
    if match := _BETWEEN.match(answer):
        low, left, right, high = match.groups()
        return f"{'[' if re.match(LE, left) else '('}{low},{high}{']' if re.match(LE, right) else ')'}"
    if match := _ONE_SIDE.match(answer):
        sign, bound = match.groups()
        if re.fullmatch(GE, sign):
            return f"[{bound},\\infty)"
        if sign == ">":
            return f"({bound},\\infty)"
        return f"(-\\infty,{bound}]" if re.fullmatch(LE, sign) else f"(-\\infty,{bound})"
    return answer


def angles(gold: str, response: str) -> tuple[str, str]:
    """A side in degrees meets the other in its units: radians when the other has pi, else degrees."""
    def to_radians(text: str) -> str:
        return f"\\frac{{({_DEGREE.sub('', text).strip()})\\pi}}{{180}}"

    def degrees(text: str) -> str:
        return _DEGREE.sub("", text).strip()

    converted = []
    for mine, other in ((gold, response), (response, gold)):
        if _DEGREE.search(mine):
            mine = to_radians(mine) if "\\pi" in other else degrees(mine)
        converted.append(mine)
    return converted[0], converted[1]


def normal_form(answer: str) -> str:
    return as_interval(expand_plus_minus(drop_label(drop_units(answer.strip()))))


def normalize(gold: str, response: str) -> tuple[str, str]:
    """Both answers in the forms math-verify compares as intended."""
    return angles(normal_form(gold), normal_form(response))


_DECIMAL = re.compile(r"^-?\d*\.\d+$")


def rounded(gold_value: object, response: str) -> bool:
    """Whether `response` is a decimal that only approximates an exact (non-decimal) reference.

    `gold_value` is math-verify's parsed reference (a sympy value). A decimal equal to it exactly
    (0.5 for 1/2) is exact; 0.444444 for 4/9 is not.
    """
    text = response.strip()
    if not _DECIMAL.match(text):
        return False
    try:
        import sympy

        exact = sympy.nsimplify(gold_value, rational=False)
        return sympy.Rational(Fraction(text)) != exact
    except (TypeError, ValueError, sympy.SympifyError):
        return False


def asks_for_decimal(statement: str) -> bool:
    return DECIMAL_WORDS.search(statement) is not None
