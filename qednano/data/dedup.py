"""`qednano data dedup TRAIN`: rows of a training set that state the same problem as an
earlier row, found and dropped (or flagged).

The set is compared with itself by the same three methods as decontamination; each pair is
reported once, the later row against the earlier one, and the later row is the one dropped, so
the first statement of each problem is kept. A chain A~B~C where A and C do not match still
drops both B and C: each matches an earlier row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qednano.data.overlap import (
    OverlapConfig,
    build_corpora,
    find_with_progress,
    match_record,
    read_text_set,
    write_results,
)
from qednano.records.rundir import Run, default_run_dir

FLAG_COLUMN = "duplicate_of"  # with --flag: ids of the earlier rows this one repeats, empty for a first statement


class DedupConfig(OverlapConfig):
    pass


def run_dedup(config: DedupConfig, out: Path | None = None) -> dict[str, Any]:
    """Match the training set against itself; write matches, report and the deduplicated set."""
    out = Path(out or default_run_dir("data-dedup", Path(config.train).stem))
    with Run(out, "data-dedup", config.model_dump(mode="json")):
        train = read_text_set(config.train, config.columns, config.split)
        (corpus,) = build_corpora([train], config.settings)
        pairs = find_with_progress(corpus, corpus, config.settings, config.train, same=True)
        records = [match_record(train, train, config.train, pair) for pair in pairs]
        sizes = {config.train: len(train.ids)}
        return write_results(out, "Deduplication", config, train, records, sizes, FLAG_COLUMN, lambda r: r["against_id"])
