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


def test_the_whole_cpu_recipe_block_names_what_exists():
    """bench/cpu_pipeline.py runs README's block as written: every recipe, file and prompt folder it
    names must exist, each stage must start from the one before, and the evals must cover each stage."""
    import importlib
    import sys

    sys.path.insert(0, str(REPO / "bench"))  # as when the script runs: its folder is on the path
    try:
        pipeline = importlib.import_module("cpu_pipeline")
    finally:
        sys.path.remove(str(REPO / "bench"))
    commands = pipeline.readme_commands()
    assert all(c.startswith("qednano ") for c in commands)
    trains = [c.split() for c in commands if c.startswith("qednano train")]
    assert [t[2] for t in trains] == ["sft", "rl", "rl"]
    for words in trains:
        assert (REPO / "configs" / "recipes" / f"{words[3]}.yaml").is_file()
    run_dirs = [t[t.index("--run-dir") + 1] for t in trains]
    assert [t[t.index("--set") + 1] for t in trains[1:]] == [f"model={d}/model" for d in run_dirs[:2]]
    evals = [c.split() for c in commands if c.startswith("qednano eval")]
    assert {e[e.index("-m") + 1] for e in evals} == {"smollm2-int8", *(f"{d}/model" for d in run_dirs)}
    for words in evals:
        assert (REPO / words[words.index("--bench") + 1]).is_file()
        assert (REPO / words[words.index("--prompts") + 1] / "solve_answer.txt").is_file()


def test_the_statement_only_prompt_folder_asks_with_the_problem_alone():
    from qednano.prompts import Prompts

    asked = Prompts(REPO / "configs" / "prompts" / "statement-only", variant="answer").fill("solve", problem="What is 2+3?")
    assert asked.strip() == "What is 2+3?"
