"""Decontamination throughput, recall on planted near-duplicates, and false positives.

1. Throughput: N synthetic training problems (random sentences in IMO-Bench's own vocabulary,
   with inline formulas; every 100th is a rewritten benchmark problem) decontaminated against the 460 IMO-Bench problems by
   `qednano data decontaminate`'s matcher (normalize, hash n-grams once with numpy, exact keys,
   n-gram containment through a sorted inverted index, MinHash.bulk + MinHashLSH), beside a
   plain-Python baseline that does the n-gram part the obvious way: the same normalized
   tokens, n-grams as Python tuple sets, and a set intersection with every benchmark problem.
   The baseline is all-pairs, so it runs on the first `--baseline-n` problems; on those both
   must report the same n-gram matches. Throughputs are printed as a ratio.
2. Recall: every IMO-Bench problem rewritten five ways and all at once (qednano.data.variants),
   matched against the benchmark: how many are found.
3. False positives: the 460 distinct IMO-Bench problems against each other; every problem
   matched to another one counts as a false positive.

    python bench/decontaminate.py [--n 100000] [--baseline-n 3000] [--plant-every 100] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
import re
import time

from machine import processor  # bench/machine.py (the script's own folder is on sys.path)

from qednano.data.matching import Corpus, MatchSettings, find_matches, ngram_pairs
from qednano.data.similarity import Hasher, tokenize
from qednano.data.variants import VARIANTS
from qednano.problems.loaders import load_problems

BENCHMARKS = ("imo-proofbench", "imo-answerbench")




def synthetic_problems(count: int, vocabulary: list[str], seed: int) -> list[str]:
    """Problem-shaped texts: 2-4 sentences of random benchmark words and small formulas."""
    rng = random.Random(seed)
    letters = "abcdefghkmnpqrstuvxyz"

    def formula() -> str:
        terms = [f"{rng.choice(letters)}^{rng.randint(2, 5)}" if rng.random() < 0.4 else rng.choice(letters) for _ in range(rng.randint(2, 4))]
        return "$" + rng.choice([" + ", " - ", " \\cdot "]).join(terms) + f" = {rng.randint(0, 2030)}$"

    def sentence() -> str:
        words = [formula() if rng.random() < 0.12 else rng.choice(vocabulary) for _ in range(rng.randint(8, 20))]
        return " ".join(words).capitalize() + rng.choice([".", ".", "?"])

    return [" ".join(sentence() for _ in range(rng.randint(2, 4))) for _ in range(count)]


def plant(train: list[str], bench: list[str], every: int, seed: int) -> dict[int, int]:
    """Replace every `every`-th training problem by a rewritten benchmark problem; {row: benchmark index}."""
    rng = random.Random(seed)
    rewrites = list(VARIANTS.values())
    planted = {}
    for row in range(0, len(train), every):
        source = rng.randrange(len(bench))
        train[row] = rewrites[row // every % len(rewrites)](bench[source])
        planted[row] = source
    return planted


def baseline_ngram_pairs(train: list[str], bench: list[str], settings: MatchSettings) -> set[tuple[int, int]]:
    """Plain Python: tuple n-gram sets, one set intersection per (train, benchmark) pair."""
    n = settings.ngram

    def ngrams(text: str) -> set[tuple[str, ...]]:
        grams = set()
        for sentence in tokenize(text):
            grams.update(tuple(sentence[i : i + n]) for i in range(len(sentence) - n + 1)) if len(sentence) >= n else grams.add(tuple(sentence))
        return grams

    bench_sets = [ngrams(text) for text in bench]
    frequency: dict[tuple[str, ...], int] = {}
    for grams in bench_sets:
        for gram in grams:
            frequency[gram] = frequency.get(gram, 0) + 1
    common = {gram for gram, count in frequency.items() if count > settings.common_ngram}  # the same boilerplate rule
    bench_sets = [grams - common for grams in bench_sets]
    pairs = set()
    for q, text in enumerate(train):
        grams = ngrams(text) - common
        for r, other in enumerate(bench_sets):
            shared = len(grams & other)
            if shared and shared / max(min(len(grams), len(other)), 1) >= settings.ngram_threshold:
                pairs.add((q, r))
    return pairs


class Clock:
    """Wall and CPU seconds of a block. On a shared machine the CPU time is the steadier figure."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    def rates(self, count: int) -> str:
        return f"{count / self.wall:,.0f} problems/s wall ({self.wall:.1f} s), {count / self.cpu:,.0f} per CPU-second ({self.cpu:.1f} s)"


def decontaminate(train: list[str], bench: list[str], settings: MatchSettings) -> list:
    """Our whole matcher, hashing included."""
    hasher = Hasher(settings.ngram)
    train_corpus, bench_corpus = Corpus.build(train, hasher), Corpus.build(bench, hasher)
    return find_matches(train_corpus, bench_corpus, settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="Synthetic training problems.")
    parser.add_argument("--baseline-n", type=int, default=3000, help="Problems the all-pairs baseline checks.")
    parser.add_argument("--plant-every", type=int, default=100, help="Every k-th training problem is a rewritten benchmark problem.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    settings = MatchSettings()
    problems = [p for name in BENCHMARKS for p in load_problems(name)]
    bench = [p.statement for p in problems]
    print(f"processor: {processor()}; {len(bench)} IMO-Bench problems; settings {settings.model_dump()}")

    vocabulary = sorted({w for text in bench for w in re.findall(r"[A-Za-z]{2,}", text)})
    train = synthetic_problems(args.n, vocabulary, args.seed)
    planted = plant(train, bench, args.plant_every, args.seed)
    with Clock() as ours:
        ours_pairs = decontaminate(train, bench, settings)
    found = {(p.query, p.reference) for p in ours_pairs}
    hits = sum((row, source) in found for row, source in planted.items())
    others = len({p.query for p in ours_pairs} - set(planted))
    print(f"\nqednano matcher, {len(train)} problems: {ours.rates(len(train))}")
    print(f"  planted rewrites found: {hits}/{len(planted)}; synthetic problems matched: {others}/{len(train) - len(planted)}")

    subset = train[: args.baseline_n]
    with Clock() as base:
        expected = baseline_ngram_pairs(subset, bench, settings)
    hasher = Hasher(settings.ngram)
    ours_ngram = {(q, r) for q, r, _ in ngram_pairs(Corpus.build(subset, hasher), Corpus.build(bench, hasher), settings)}
    print(f"plain-Python n-gram sets (all pairs), {len(subset)} problems: {base.rates(len(subset))}")
    print(f"n-gram matches on those {len(subset)}: baseline {len(expected)}, qednano {len(ours_ngram)}, same: {expected == ours_ngram}")
    wall_ratio = (len(train) / ours.wall) / (len(subset) / base.wall)
    cpu_ratio = (len(train) / ours.cpu) / (len(subset) / base.cpu)
    print(f"throughput ratio (qednano, all three methods / baseline, n-grams only): {cpu_ratio:.1f}x per CPU-second, {wall_ratio:.1f}x wall")

    print("\nplanted near-duplicates of the 460 problems found (by any method):")
    hasher = Hasher(settings.ngram)
    bench_corpus = Corpus.build(bench, hasher)
    for variant, rewrite in VARIANTS.items():
        planted = Corpus.build([rewrite(text) for text in bench], hasher)
        found = {p.query for p in find_matches(planted, bench_corpus, settings) if p.query == p.reference}
        print(f"  {variant:<11} {len(found)}/{len(bench)}")

    pairs = find_matches(bench_corpus, bench_corpus, settings, same=True)
    flagged = {p.query for p in pairs} | {p.reference for p in pairs}
    by_method = {m: sum(p.method == m for p in pairs) for m in settings.methods}
    print(
        f"\nfalse positives among the {len(bench)} distinct problems: {len(flagged)} problems "
        f"({len(flagged) / len(bench):.1%}) in {len(pairs)} of {len(bench) * (len(bench) - 1) // 2} pairs {by_method}"
    )
    for p in pairs:
        print(f"  {problems[p.query].id} ~ {problems[p.reference].id} ({p.method} {p.similarity})")


if __name__ == "__main__":
    main()
