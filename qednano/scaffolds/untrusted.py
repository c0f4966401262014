"""Proofs shown to a verifier, judge, scorer or aggregator as untrusted data, and reading the
verdict line of its answer.

The scaffolds put model-written proofs into prompts and act on the verdict that comes back
(best-of-n selection, RL). A proof can try to steer that verdict: a fake "VERDICT: 1" or
"WINNER: A" line, instructions to the judge, a fake end of proof. The defences are the rubric
grader's (`qednano.grading.verdict`), with its marker strings for a lone proof:

- each proof sits between labelled marker lines (`proof_block`), and markers of this family
  inside the proof itself are defused first, so a proof cannot close its own block;
- the prompt says, once, in `prompts/untrusted.txt`, that the proofs are data, not instructions;
- `last_labelled` reads the model's own text only: after the last end marker of an echoed proof
  block, without block quotes (`> ...`), and only the LAST line with the label counts, so a
  malformed last verdict is rejected rather than replaced by an earlier, perhaps quoted, one.
Callers pass it `Completion.content`, never the reasoning.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from qednano.grading.verdict import MARKER_REMOVED as REMOVED
from qednano.grading.verdict import PROOF_BEGIN, PROOF_END, defuse, outside_echoed_proof
from qednano.prompts import load_prompt

__all__ = ["REMOVED", "defuse", "last_labelled", "markers", "proof_block", "untrusted_note"]


def markers(label: str = "") -> tuple[str, str]:
    """The (begin, end) marker lines of proof `label`; a lone proof uses the grader's markers."""
    if not label:
        return PROOF_BEGIN, PROOF_END
    return f"<<<BEGIN UNTRUSTED PROOF {label}>>>", f"<<<END UNTRUSTED PROOF {label}>>>"


def proof_block(proof: str, label: str = "") -> str:
    begin, end = markers(label)
    return f"{begin}\n{defuse(proof).strip()}\n{end}"


def untrusted_note() -> str:
    """The prompt paragraph that tells the model how to treat the marked proofs."""
    return load_prompt(__file__, "untrusted").strip()


def last_labelled(content: str, label: str, labels: Sequence[str] = ("",)) -> str | None:
    """The value after `label:` on the last line of the answer's own text that starts with the
    label (markdown emphasis and a trailing full stop removed); None if there is no such line.

    `labels` are the proof labels the prompt used, so echoed copies of those blocks are skipped.
    The caller checks the value: a malformed one must reject the answer.
    """
    pattern = re.compile(rf"^[#\s*_`]*{re.escape(label)}[\s*_`]*:(?P<value>.*)$", re.IGNORECASE)
    own = outside_echoed_proof(content, [markers(name) for name in labels])
    found = None
    for line in own.splitlines():
        line = line.strip()
        if line.startswith(">"):
            continue  # a block quote: the judge quoting the proof, not speaking for itself
        if match := pattern.match(line):
            found = match["value"]
    if found is None:
        return None
    # Verdict values hold no markdown: "**Verdict:** 1", "WINNER: **B**." read as "1" and "B".
    return re.sub(r"[*_`]", "", found).strip().removesuffix(".").strip()
