"""The dataset card (README.md) of an export: what is in it, what was removed, and how it was made.

The card is written from the run directories themselves, never from memory: the chain of
stages is followed back through each manifest's `run` / `problems` setting, and every count
is read from the stage's own files (filter `summary.json`, the per-problem decisions of the
rubrics, label and difficulty stages, a decontamination run's `matches.jsonl`).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from qednano.data.stage import is_run_dir
from qednano.records.rundir import read_manifest

DECISIONS = {"data-rubrics": "rubrics.jsonl", "data-label": "labels.jsonl", "data-difficulty": "difficulty.jsonl"}


def stage_chain(run_dir: Path) -> list[tuple[Path, dict]]:
    """The run directories that led to `run_dir`, first stage first, with their manifests."""
    chain: list[tuple[Path, dict]] = []
    current: Path | None = run_dir
    while current is not None and (manifest := read_manifest(current)) is not None and len(chain) < 20:
        chain.append((current, manifest))
        config = manifest.get("config", {})
        parent = config.get("run") or config.get("problems")
        current = Path(parent) if parent and is_run_dir(parent) else None
    return chain[::-1]


def decontamination_matches(run_dir: Path) -> list[dict[str, Any]]:
    """The matched pairs of a decontamination run; a line without `train_id` fails naming it."""
    path = run_dir / "matches.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: --decontamination takes the run directory of `qednano data decontaminate`")
    matches = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            match = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} line {number}: not valid JSON ({err.msg})") from err
        if not isinstance(match, dict) or not match.get("train_id"):
            raise ValueError(f"{path} line {number}: field 'train_id' is missing")
        matches.append(match)
    return matches


def stage_notes(path: Path, command: str) -> list[str]:
    """What a stage kept and dropped, read from its own files."""
    notes = []
    if command == "data-filter" and (path / "summary.json").is_file():
        summary = json.loads((path / "summary.json").read_text())
        notes.append(f"kept {summary['kept']} of {summary['samples']} samples")
        notes += [f"dropped {count}: {reason}" for reason, count in summary["dropped_by_reason"].items()]
    if command in DECISIONS and (path / DECISIONS[command]).is_file():
        rows = [json.loads(line) for line in (path / DECISIONS[command]).read_text().splitlines() if line.strip()]
        if command == "data-rubrics":
            notes.append(f"valid marking schemes for {sum(r['status'] == 'ok' for r in rows)} of {len(rows)} problems")
        else:
            notes.append(f"kept {sum(r['kept'] for r in rows)} of {len(rows)} problems")
            reasons = Counter(r["reason"].split(" (")[0] for r in rows if r.get("reason"))
            reasons.update(reason.split(":")[0] for r in rows for reason in r.get("reasons", []))
            notes += [f"dropped {count}: {reason}" for reason, count in reasons.most_common()]
    return notes


def decontamination_section(decontamination: str | None, counts: dict, matches: list[dict] | None) -> list[str]:
    if decontamination is None or matches is None:
        return ["No decontamination run was given: this dataset was **not** checked against evaluation benchmarks."]
    lines = [f"Decontamination run: `{decontamination}`, {len(matches)} matched pairs, "
             f"{len({m['train_id'] for m in matches})} training problems matched; "
             f"{counts['dropped_as_contaminated']} rows dropped here.", "", "| against | method | pairs |", "|---|---|---|"]
    by_kind = Counter((str(m.get("against", "?")), str(m.get("method", "?"))) for m in matches)
    lines += [f"| {against} | {method} | {count} |" for (against, method), count in sorted(by_kind.items())]
    return lines + checked_against(Path(decontamination))


def checked_against(run_dir: Path) -> list[str]:
    """What the decontamination run's report says it compared: every benchmark, matched or not."""
    path = run_dir / "report.json"
    if not path.is_file():
        return ["", "(the run has no report.json: only the matched benchmarks are known)"]
    report = json.loads(path.read_text())
    compared = [f"`{name}` ({entry.get('against_problems', '?')} problems)" for name, entry in report.get("against", {}).items()]
    lines = ["", f"Checked `{report.get('train')}` against {', '.join(compared) or 'nothing'}"]
    return lines + [f"with settings `{json.dumps(report.get('settings', {}), sort_keys=True)}`."]


def dataset_card(manifest: dict, counts: dict, matches: list[dict] | None) -> str:
    """The card of an export, from its manifest (whose config names the source and decontamination runs)."""
    config = manifest["config"]
    header = ["---", "configs:", "- config_name: default", "  data_files:", "  - split: train", "    path: data/train-*", "---"]
    lines = [*header, "", f"# {config['kind'].upper()} proofs dataset made with qednano", "",
             f"{counts['rows']} rows over {counts['problems']} problems.", "", "## Decontamination", ""]
    lines += decontamination_section(config.get("decontamination"), counts, matches)
    lines += ["", "## How it was made", ""]
    for number, (path, stage) in enumerate(stage_chain(Path(config["run"])), start=1):
        totals = stage.get("totals", {})
        lines.append(f"{number}. `{stage.get('command')}` in `{path}` ({stage.get('status')}; "
                     f"{totals.get('tokens', 0)} tokens, ${totals.get('cost_usd', 0)})")
        lines += [f"   - {note}" for note in stage_notes(path, stage.get("command", ""))]
        lines.append(f"   - settings: `{json.dumps(stage.get('config', {}), sort_keys=True)}`")
    lines += ["", "## Export manifest", "", "```json", json.dumps(manifest, indent=2, default=str), "```", ""]
    return "\n".join(lines)
