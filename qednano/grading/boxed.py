"""The final answer a response commits to: its last \\boxed{} (brace-counted), and what math-verify can read.

math-verify parses LaTeX, so these helpers also say when an answer is partly words, which
math-verify would silently drop ("odd $n$" would be read as `n`).
"""

from __future__ import annotations

import re

BOX_COMMANDS = ("\\boxed", "\\fbox")


def last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` (or `\\fbox{...}`) in `text`, else None.

    Braces are counted, so nested braces are kept (`\\boxed{\\frac{1}{2}}`), and escaped ones
    (`\\{`, `\\}`) do not count. `\\boxed 5` (no braces) takes the token after the space. If the
    last box is never closed (a truncated answer) the result is None, not an earlier box: the
    answer the model meant to give is the one that was cut off. An empty box is no answer.
    """
    last: str | None = None
    position = 0
    while (start := _next_box_command(text, position)) is not None:
        content, position = _box_argument(text, start)
        last = content
    return last


def _next_box_command(text: str, position: int) -> int | None:
    """Index just after the next box command at or after `position`."""
    found = [(i, command) for command in BOX_COMMANDS if (i := text.find(command, position)) >= 0]
    while found:
        index, command = min(found)
        end = index + len(command)
        # `\boxedfoo` is another control word, not a box.
        if end >= len(text) or not text[end].isalpha():
            return end
        found = [(i, c) for c in BOX_COMMANDS if (i := text.find(c, index + 1)) >= 0]
    return None


def _box_argument(text: str, start: int) -> tuple[str | None, int]:
    """(content, index after it) of the box argument that starts at `start`."""
    i = start
    while i < len(text) and text[i] in " \t":
        i += 1
    if i < len(text) and text[i] == "{":
        depth = 0
        j = i
        while j < len(text):
            char = text[j]
            if char == "\\":
                j += 2  # an escaped character (\{, \}, \\) never opens or closes a group
                continue
            if char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    return text[i + 1 : j].strip() or None, j + 1
            j += 1
        return None, len(text)  # never closed
    # `\boxed 5`: one bare token, up to whitespace or the end of math mode.
    match = re.match(r"[^\s$]+", text[i:])
    if match is None:
        return None, i
    return match.group().rstrip(".,;") or None, i + match.end()


def final_answer(response: str) -> str | None:
    """The answer a response commits to: its last box; a one-line response is its own answer."""
    boxed = last_boxed(response)
    if boxed is not None:
        return boxed
    text = response.strip()
    return text if text and "\n" not in text else None


_DELIMITERS = re.compile(r"\$|\\\(|\\\)|\\\[|\\\]")
_MATH_SPANS = re.compile(r"\$\$.*?\$\$|\$.*?\$|\\\(.*?\\\)|\\\[.*?\\\]", re.DOTALL)
_TEXT_ARGUMENT = re.compile(r"\\(?:text|textrm|textbf|mbox)\s*\{([^{}]*)\}")
_COMMAND = re.compile(r"\\[A-Za-z]+")


def as_math(answer: str) -> str:
    """An answer as bare LaTeX: math delimiters and a trailing full stop removed."""
    return _DELIMITERS.sub("", answer).strip().rstrip(".").strip()


def prose_words(answer: str) -> list[str]:
    """Words (two letters or more) written as text in an answer: outside math, or in \\text{}.

    math-verify reads "odd $n$" as `n` and "$f(x)=x$ for some $a>0$" as `a>0`: it keeps a
    formula and drops the words around it, so such answers go to the judge instead. An answer
    with no math delimiters at all is read whole (letters there are text or single variables).
    """
    has_delimiters = _DELIMITERS.search(answer) is not None
    outside = _MATH_SPANS.sub(" ", answer) if has_delimiters else answer
    text = " ".join([_COMMAND.sub(" ", outside), *_TEXT_ARGUMENT.findall(answer)])
    return re.findall(r"[A-Za-z]{2,}", text)
