"""The one helper that loads prompt files, and the folder of replacements a user may give.

Prompts are plain text files in a `prompts/` folder beside the module that uses them, so a
prompt exists once and can be read and diffed as text. Placeholders are `{name}`; literal
braces in a prompt are doubled (`\\boxed{{}}`). Filling checks that every placeholder is
given and that no value goes unused, so a renamed placeholder fails loudly.

Every prompt has a name unique across the package (its file's stem), so a user can replace
any of them with a folder of `NAME.txt` files (`Prompts(folder)`, `--prompts DIR`): a model
trained on other wording can be evaluated on the wording it knows, from the user's own copy
of it. A replacement is checked when the folder is read: it must use each placeholder the
shipped prompt uses (except the optional ones below) and no other, and the error names the
file and the placeholder. Prompts the folder does not hold keep the shipped wording.
"""

from __future__ import annotations

import hashlib
import string
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent

# Helper text a replacement may do without: the note on untrusted data (a replacement can say
# it in its own words) and the number of candidates (the candidates themselves are required).
OPTIONAL = frozenset({"untrusted", "count"})


class PromptError(ValueError):
    """A replacement prompt folder or file that cannot be used; the message names the file."""


@cache
def load_prompt(module_file: str, name: str) -> str:
    path = Path(module_file).resolve().parent / "prompts" / f"{name}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"prompt file {path} is missing")
    return path.read_text()


@cache
def shipped() -> dict[str, Path]:
    """Every prompt file in the package by name (`qednano/*/prompts/NAME.txt`)."""
    found: dict[str, Path] = {}
    for path in sorted(PACKAGE.glob("*/prompts/*.txt")):
        if path.stem in found:
            raise RuntimeError(f"prompt name {path.stem!r} is used twice: {found[path.stem]} and {path}")
        found[path.stem] = path
    return found


@cache
def shipped_text(name: str) -> str:
    if name not in shipped():
        raise KeyError(f"no prompt named {name!r}")
    return shipped()[name].read_text()


def placeholders(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field}


def fill(template: str, /, **values: object) -> str:
    wanted = placeholders(template)
    missing, unused = wanted - values.keys(), values.keys() - wanted
    if missing or unused:
        raise KeyError(f"prompt placeholders missing {sorted(missing)}, unused values {sorted(unused)}")
    return template.format_map(values)


def needs(name: str) -> tuple[set[str], set[str]]:
    """(placeholders a replacement of prompt `name` must use, those it may leave out)."""
    known = placeholders(shipped_text(name))
    return known - OPTIONAL, known & OPTIONAL


def _braces(names: set[str]) -> str:
    return ", ".join(f"{{{n}}}" for n in sorted(names)) or "none"


def check_replacement(path: Path, text: str, name: str) -> None:
    """Raise PromptError unless `text` can stand in for the shipped prompt `name`."""
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(text) if field is not None]
    except ValueError as err:
        raise PromptError(f"{path}: {err}; write literal braces doubled, as {{{{ and }}}}") from err
    if "" in fields:
        raise PromptError(f"{path}: empty placeholder {{}}; write literal braces doubled, as {{{{ and }}}}")
    needed, optional = needs(name)
    have, known = set(fields), needed | optional
    if unknown := sorted(have - known):
        raise PromptError(
            f"{path}: unknown placeholder {{{unknown[0]}}}; this prompt takes {_braces(known)} "
            "(literal braces are written doubled, as {{ and }})"
        )
    if missing := sorted(needed - have):
        raise PromptError(f"{path}: placeholder {{{missing[0]}}} is missing; this prompt needs {_braces(needed)}")


def read_folder(folder: Path) -> dict[str, str]:
    """The checked replacement prompts of `folder`, by name."""
    if not folder.is_dir():
        raise PromptError(f"prompts folder {folder} does not exist")
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise PromptError(f"prompts folder {folder} holds no NAME.txt prompt files; names: {', '.join(shipped())}")
    texts: dict[str, str] = {}
    for path in files:
        if path.stem not in shipped():
            raise PromptError(f"{path}: not a prompt qednano uses; prompt names are {', '.join(shipped())}")
        text = path.read_text()
        check_replacement(path, text, path.stem)
        texts[path.stem] = text
    return texts


class Prompts:
    """Prompt texts by name: the shipped wording, or a user's replacements from a folder.

    `variant` picks a prompt's twin where the package ships one: with variant "answer", a
    request for `compare` reads `compare_answer` (the scaffolds' wording for answer benchmarks).
    """

    def __init__(self, folder: str | Path | None = None, variant: str | None = None):
        self.folder = None if folder is None else Path(folder)
        self.variant = variant
        self.replaced = {} if self.folder is None else read_folder(self.folder)

    def fingerprint(self) -> dict[str, str]:
        """The replaced prompts' content hashes, by name: a run's manifest records its wording."""
        return {name: hashlib.sha256(text.encode()).hexdigest()[:16] for name, text in sorted(self.replaced.items())}

    def name(self, name: str) -> str:
        twin = f"{name}_{self.variant}"
        return twin if self.variant and twin in shipped() else name

    def text(self, name: str) -> str:
        name = self.name(name)
        return self.replaced[name] if name in self.replaced else shipped_text(name)

    def fill(self, name: str, **values: object) -> str:
        text = self.text(name)
        if self.name(name) in self.replaced:  # a replacement may leave optional values out
            used = placeholders(text)
            values = {k: v for k, v in values.items() if k in used or k not in OPTIONAL}
        return fill(text, **values)


SHIPPED = Prompts()  # our own wording, proof mode
