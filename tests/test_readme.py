"""README's layout section lists every module of the package, and nothing that is not there."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def layout_entries() -> set[str]:
    """Paths under qednano/ named in README's layout tree ("llm/spec.py", "paths.py", "grading/")."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"## Layout\n.*?```\n(.*?)```", text, re.DOTALL)
    assert block, "README.md has no layout tree"
    entries, folder = set(), ""
    for line in block.group(1).splitlines():
        indent = len(line) - len(line.lstrip())
        name = line.split()[0] if line.strip() else ""
        if indent == 2:  # directly in qednano/: a module, or a subpackage that opens a folder
            folder = name if name.endswith("/") else ""
            entries.add(name)
        elif indent == 4 and folder:
            entries.add(folder + name)
    return entries


def test_readme_layout_matches_the_tree():
    listed = layout_entries()
    package = REPO / "qednano"
    modules = {str(p.relative_to(package)) for p in package.rglob("*.py") if p.name != "__init__.py"}
    folders = {f"{p.name}/" for p in package.iterdir() if (p / "__init__.py").is_file()}
    missing = sorted((modules | folders) - listed)
    assert not missing, f"add these to README's layout section: {missing}"
    stale = sorted(e for e in listed if e.endswith(".py") and e not in modules)
    assert not stale, f"README's layout section lists files that do not exist: {stale}"
