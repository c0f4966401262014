"""`qednano data decontaminate TRAIN --against BENCH --against FILE`: training rows that state
an evaluation problem, found and dropped (or flagged).

Benchmarks are read through the problem loaders: `imo-proofbench` and `imo-answerbench` from
their CSV files in a data directory, anything else from its Hugging Face dataset. A benchmark
with no local copy needs the Hub; when the Hub cannot be reached the run stops at once with
an error that says how to pass a local copy, rather than waiting on the datasets library's
retries. A file (`--against bench.jsonl`) is read like a training set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from qednano.data.overlap import (
    OverlapConfig,
    TextSet,
    build_corpora,
    find_with_progress,
    hub_reachable_or_fail,
    match_record,
    read_text_set,
    write_results,
)
from qednano.problems.layouts import BENCHMARKS, find_local
from qednano.problems.loaders import load_problems
from qednano.records.rundir import Run, default_run_dir

FLAG_COLUMN = "contaminated_by"  # with --flag: "benchmark:problem id" of every match, empty when clean


class DecontaminateConfig(OverlapConfig):
    against: list[str] = Field(min_length=1, description="Benchmarks (imo-proofbench, imo-answerbench, proofbench), HF names or files.")


def load_against(source: str) -> TextSet:
    """A benchmark's problems (statement as the text), or the rows of a file or dataset."""
    if source not in BENCHMARKS:
        return read_text_set(source)
    benchmark = BENCHMARKS[source]
    if not (benchmark.local_file and find_local(benchmark.local_file)):
        local = f", or put {benchmark.local_file} in $QEDNANO_DATA_DIR" if benchmark.local_file else ""
        hub_reachable_or_fail(
            f"{source}: no local copy in the data directories, and its dataset {benchmark.hub}",
            f"pass a local copy with --against FILE (columns problem_id and problem){local}",
        )
    problems = load_problems(source)
    return TextSet(name=source, ids=[p.id for p in problems], texts=[p.statement for p in problems], rows=[])


def run_decontaminate(config: DecontaminateConfig, out: Path | None = None) -> dict[str, Any]:
    """Match the training set against every benchmark; write matches, report and the cleaned set."""
    out = Path(out or default_run_dir("data-decontaminate", Path(config.train).stem))
    with Run(out, "data-decontaminate", config.model_dump(mode="json")):
        train = read_text_set(config.train, config.columns, config.split)
        names = list(dict.fromkeys(config.against))  # each benchmark once, in the order given
        against = [load_against(name) for name in names]
        train_corpus, *against_corpora = build_corpora([train, *against], config.settings)
        records = []
        for name, text_set, corpus in zip(names, against, against_corpora, strict=True):
            pairs = find_with_progress(train_corpus, corpus, config.settings, name)
            records += [match_record(train, text_set, name, pair) for pair in pairs]
        sizes = {name: len(text_set.ids) for name, text_set in zip(names, against, strict=True)}
        return write_results(
            out, "Decontamination", config, train, records, sizes, FLAG_COLUMN, lambda r: f"{r['against']}:{r['against_id']}"
        )
