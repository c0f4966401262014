"""Model-written Markdown with LaTeX, rendered to safe HTML with MathML (no script, no network).

Why MathML made on the server: Chromium (since 109) and Firefox draw MathML natively, so the
page needs no JavaScript, no fonts and no assets beyond what pip installs (`latex2mathml`), and
a test can count `<math>` nodes. KaTeX would need its JS and fonts shipped as files that no pip
package pins.

Markdown is parsed by markdown-it-py with raw HTML off (a `<script>` in a proof is shown as
text). Math is cut out of the text before any Markdown rule sees it, so `_` and `\\` inside a
formula are never read as emphasis or escapes: `$...$` and `$$...$$` by mdit-py-plugins'
dollarmath, `\\(...\\)` and `\\[...\\]` by `bracket_math` below.

latex2mathml copies `\\text{...}` content into its output unescaped, so its output is parsed as
XML, checked against a list of MathML elements and written out again (which escapes all text).
A formula that fails any step is shown as its source, marked `math-error`.
"""

from __future__ import annotations

import html
import xml.etree.ElementTree as ET
from functools import cache, lru_cache

from latex2mathml.converter import convert
from markdown_it import MarkdownIt
from markdown_it.rules_inline import StateInline
from mdit_py_plugins.dollarmath import dollarmath_plugin

MATHML_ELEMENTS = frozenset(
    "math mrow mi mn mo ms mtext mspace msub msup msubsup mfrac msqrt mroot mstyle merror mpadded "
    "mphantom mfenced menclose munder mover munderover mtable mtr mtd mlabeledtr mmultiscripts "
    "mprescripts none semantics annotation maction".split()
)
MATHML_NS = ' xmlns="http://www.w3.org/1998/Math/MathML"'


class MathError(ValueError):
    pass


def to_mathml(latex: str, display: bool) -> str:
    """MathML for `latex`; raises MathError when it cannot be converted safely."""
    try:
        raw = convert(latex, display="block" if display else "inline")
    except Exception as err:  # latex2mathml raises many private error types for bad input
        raise MathError(f"{type(err).__name__}: {err}") from err
    try:
        tree = ET.fromstring(raw.replace(MATHML_NS, "", 1))
    except ET.ParseError as err:
        raise MathError(f"unsafe or malformed MathML ({err})") from err
    for element in tree.iter():
        if element.tag not in MATHML_ELEMENTS:
            raise MathError(f"unexpected element <{element.tag}> in the converted formula")
        for name in list(element.attrib):
            if name.lower().startswith("on") or name.lower() in {"href", "src", "style", "xlink:href"}:
                del element.attrib[name]
    return ET.tostring(tree, encoding="unicode", short_empty_elements=False)


@lru_cache(maxsize=50_000)  # a page repeats formulas (the proof, then the call that wrote it)
def render_math(latex: str, display: bool) -> str:
    """The formula as MathML, or its escaped source marked as an error when conversion fails."""
    try:
        return to_mathml(latex, display)
    except MathError as err:
        delimiters = ("\\[", "\\]") if display else ("\\(", "\\)")
        source = html.escape(f"{delimiters[0]}{latex}{delimiters[1]}")
        return f'<code class="math-error" title="{html.escape(str(err))}">{source}</code>'


def bracket_math(state: StateInline, silent: bool) -> bool:
    """Inline rule for `\\(...\\)` (inline) and `\\[...\\]` (display); runs before backslash escapes."""
    start = state.pos
    if not state.src.startswith(("\\(", "\\["), start):
        return False
    display = state.src[start + 1] == "["
    end = state.src.find("\\]" if display else "\\)", start + 2)
    if end < 0:
        return False
    if not silent:
        token = state.push("math_bracket_display" if display else "math_inline", "math", 0)
        token.content = state.src[start + 2 : end]
        token.markup = state.src[start : start + 2]
    state.pos = end + 2
    return True


def _render_bracket_display(self, tokens, idx, options, env) -> str:
    # a span, not a div: `\[ ... \]` sits inside a paragraph, where a div would break the <p>
    return f'<span class="math display">{render_math(tokens[idx].content.strip(), True)}</span>'


@cache
def parser() -> MarkdownIt:
    # breaks: models separate lines with single newlines and mean them (verdict lines, steps)
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True}).enable(["table", "strikethrough"])
    md.disable("image")  # a model-written image link would make the page fetch from its host
    dollarmath_plugin(md, double_inline=True, renderer=lambda text, opts: render_math(text, opts["display_mode"]))
    md.inline.ruler.before("escape", "math_bracket", bracket_math)
    md.add_render_rule("math_bracket_display", _render_bracket_display)
    return md


def render_markdown(text: str) -> str:
    """HTML for model-written Markdown with math; raw HTML in `text` is escaped, never passed on."""
    return parser().render(text or "")
