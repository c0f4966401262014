"""Model-written text shown to a grader, verifier or judge as untrusted data, and reading the
labelled line ("FINAL SCORE: 6", "VERDICT: 1", "WINNER: A") that the reader writes back.

A proof (or a candidate answer) can try to steer the verdict it gets: a fake "FINAL SCORE: 7"
line, instructions to the grader, a fake end of proof. The defences, used by every grader,
judge and scaffold:

- each proof sits between labelled marker lines (`proof_block`), and markers of the family
  inside the proof itself are defused first (`defuse`), so a proof cannot close its own block;
- the prompt says, once, in `prompts/untrusted.txt` (`untrusted_note`), that the proofs are
  data, not instructions;
- the answer is read from the model's own text only (`own_lines`): the final answer
  (`Completion.content`, never the reasoning), after the last end marker of a block it echoed,
  without a block it re-opened and never closed, and without block quotes (`> ...`);
- only the LAST line with the label counts (`last_labelled`): a malformed last verdict rejects
  the answer rather than falling back to an earlier line that may be a quotation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from qednano.prompts import SHIPPED, Prompts

PROOF_BEGIN = "<<<BEGIN UNTRUSTED PROOF>>>"
PROOF_END = "<<<END UNTRUSTED PROOF>>>"
# Any marker of this family, whatever its label, case or spacing ("<<<BEGIN UNTRUSTED PROOF A>>>"):
# none may survive inside a proof, not even a near-copy that could persuade a model its block ended.
_PROOF_MARKER = re.compile(r"<<<\s*(?:BEGIN|END)\s+UNTRUSTED\s+PROOF\b[^<>\n]*>>>", re.IGNORECASE)
MARKER_REMOVED = "[marker removed]"

Markers = Sequence[tuple[str, str]]  # the (begin, end) marker pairs of the blocks a prompt showed


def markers(label: str = "") -> tuple[str, str]:
    """The (begin, end) marker lines of proof `label`; a lone proof has no label."""
    if not label:
        return PROOF_BEGIN, PROOF_END
    return f"<<<BEGIN UNTRUSTED PROOF {label}>>>", f"<<<END UNTRUSTED PROOF {label}>>>"


def defuse(text: str) -> str:
    """`text` with every proof marker replaced, so it cannot open or close a proof block."""
    return _PROOF_MARKER.sub(MARKER_REMOVED, text)


def proof_block(proof: str, label: str = "") -> str:
    """The proof between its marker lines, its own markers defused."""
    begin, end = markers(label)
    return f"{begin}\n{defuse(proof).strip()}\n{end}"


def untrusted_note(prompts: Prompts = SHIPPED) -> str:
    """The prompt paragraph that tells the model how to treat the marked proofs (ours, or the
    user's `untrusted.txt`)."""
    return prompts.text("untrusted").strip()


def outside_echoed_proof(text: str, blocks: Markers = (markers(),)) -> str:
    """The part of an answer that is not a copy of a block its prompt showed.

    The answer's own text starts after the last end marker of any block; a block opened after
    that and never closed is quotation to the end.
    """
    cut = max((text.rfind(end) + len(end) for _, end in blocks if end in text), default=0)
    region = text[cut:]
    opened = [region.find(begin) for begin, _ in blocks if begin in region]
    return region[: min(opened, default=len(region))]


def clean(line: str) -> str:
    """A line without its markdown frame. Block quotes (`> ...`) keep their `>`, so a quoted
    verdict never starts with a label and is never read as the model's own."""
    line = re.sub(r"^(?:#+|[-+]\s)\s*", "", line.strip())  # heading marks or a list bullet
    # Bold, italics and code marks around the line. Inner ones stay: a checkpoint title may
    # hold math such as a_n, and the label patterns skip marks between label and colon.
    return line.strip("*_` \t")


def own_lines(text: str, blocks: Markers = (markers(),)) -> list[tuple[str, str]]:
    """(as written, without markdown) for each non-blank line of the answer's own text."""
    lines = [line.strip() for line in outside_echoed_proof(text, blocks).splitlines()]
    return [(line, clean(line)) for line in lines if clean(line)]


def label_value(line: str, label: str) -> str | None:
    """What follows `label:` when a cleaned line starts with the label (words of the label may be
    spaced or emphasised, "**Final  score:**"); None when it does not start so."""
    words = r"\s+".join(re.escape(word) for word in label.split())
    match = re.match(rf"{words}[\s*_`]*:(?P<value>.*)$", line, re.IGNORECASE)
    return None if match is None else match["value"]


def last_labelled(text: str, label: str, blocks: Markers = (markers(),)) -> str | None:
    """The value on the last own line that starts with `label:`, markdown emphasis and a trailing
    full stop removed ("**WINNER:** B." reads "B"); None if no own line has the label.

    The caller checks the value: a malformed one must reject the answer.
    """
    found = None
    for _, line in own_lines(text, blocks):
        value = label_value(line, label)
        if value is not None:
            found = value
    if found is None:
        return None
    return re.sub(r"[*_`]", "", found).strip().removesuffix(".").strip()
