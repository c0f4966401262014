"""Find pairs of texts that state the same problem: exact, n-gram overlap and MinHash-LSH.

`Corpus.build(texts)` normalizes and hashes every text once (similarity.py). `find_matches`
then compares a query corpus with a reference corpus (or a corpus with itself, for dedup)
three ways, each with its own threshold:

- exact: equal normalized text (sentences sorted, so reordering is still exact);
- ngram: the share of the smaller text's word n-grams that the other text also has
  (containment; n-grams common to many references are left out as boilerplate), counted
  through a sorted index of the references in numpy;
- minhash: the MinHash estimate of the Jaccard similarity of the two n-gram sets, for the
  candidate pairs that datasketch's MinHashLSH returns.

A pair found by several methods is reported once, under the strictest one that found it
(exact, then ngram, then minhash), with all methods listed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from datasketch import MinHash, MinHashLSH
from pydantic import BaseModel, Field

from qednano.data.similarity import Hasher

METHODS = ("exact", "ngram", "minhash")
Progress = Callable[[int], None]  # called with the number of texts just finished


class MatchSettings(BaseModel):
    """How texts are compared; stored in the run's manifest."""

    ngram: int = Field(3, ge=1, description="Words per n-gram (after normalization).")
    ngram_threshold: float = Field(0.55, gt=0, le=1, description="Least n-gram containment that counts as a match.")
    minhash_threshold: float = Field(0.5, gt=0, le=1, description="Least estimated Jaccard similarity (MinHash-LSH).")
    num_perm: int = Field(128, ge=16, description="MinHash permutations.")
    common_ngram: int = Field(
        20, ge=1, description="An n-gram in more reference texts than this is boilerplate: the n-gram method ignores it."
    )
    methods: tuple[Literal["exact", "ngram", "minhash"], ...] = Field(METHODS, min_length=1, description="Which methods to run.")


@dataclass
class Corpus:
    """Texts hashed once: exact keys and, per text, its unique n-gram hashes (one flat array)."""

    keys: list[str]
    hashes: np.ndarray  # uint32, the n-gram hashes of all texts, text after text
    offsets: np.ndarray  # int64, text i's hashes are hashes[offsets[i]:offsets[i + 1]]
    minhashes: list[MinHash] | None = field(default=None, repr=False)

    @classmethod
    def build(cls, texts: Sequence[str], hasher: Hasher, progress: Progress | None = None, chunk: int = 2000) -> Corpus:
        keys: list[str] = []
        hashes: list[np.ndarray] = []
        sizes: list[np.ndarray] = []
        for start in range(0, len(texts), chunk):
            part_keys, part_hashes, part_sizes = hasher.fingerprint_many(texts[start : start + chunk])
            keys += part_keys
            hashes.append(part_hashes)
            sizes.append(part_sizes)
            if progress:
                progress(len(part_keys))
        size = np.concatenate(sizes) if sizes else np.zeros(0, dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(size)]).astype(np.int64)
        flat = np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.uint32)
        return cls(keys=keys, hashes=flat, offsets=offsets)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)

    def ngrams(self, i: int) -> np.ndarray:
        return self.hashes[self.offsets[i] : self.offsets[i + 1]]

    def sketches(self, num_perm: int) -> list[MinHash]:
        """One MinHash per text (computed once, with `MinHash.bulk`, from the n-gram hashes)."""
        if self.minhashes is None:
            rows = (self.ngrams(i).tolist() for i in range(len(self)))
            self.minhashes = MinHash.bulk(rows, num_perm=num_perm, hashfunc=_same)
        return self.minhashes


def _same(value: int) -> int:
    """The n-grams are hashed already (uint32); MinHash takes them as they are."""
    return value


@dataclass(frozen=True)
class Pair:
    query: int  # index into the query corpus
    reference: int  # index into the reference corpus
    method: str
    similarity: float
    methods: tuple[str, ...]


def find_matches(
    queries: Corpus,
    references: Corpus,
    settings: MatchSettings,
    same: bool = False,
    progress: Progress | None = None,
) -> list[Pair]:
    """Every (query, reference) pair that some method matches. With `same` (dedup: the corpus
    against itself) a text is only matched with earlier texts, so each pair appears once."""
    found: dict[tuple[int, int], dict[str, float]] = {}
    if "exact" in settings.methods:
        for q, r in exact_pairs(queries, references, same):
            found.setdefault((q, r), {})["exact"] = 1.0
    if "ngram" in settings.methods:
        for q, r, score in ngram_pairs(queries, references, settings, same):
            found.setdefault((q, r), {})["ngram"] = score
    if "minhash" in settings.methods:
        for q, r, score in minhash_pairs(queries, references, settings, same, progress):
            found.setdefault((q, r), {})["minhash"] = score
    elif progress:
        progress(len(queries))  # the other methods are one numpy pass each: done at once
    pairs = []
    for (q, r), scores in sorted(found.items()):
        method = next(m for m in METHODS if m in scores)
        pairs.append(Pair(q, r, method, round(scores[method], 4), tuple(m for m in METHODS if m in scores)))
    return pairs


def exact_pairs(queries: Corpus, references: Corpus, same: bool) -> list[tuple[int, int]]:
    index: dict[str, list[int]] = {}
    for r, key in enumerate(references.keys):
        index.setdefault(key, []).append(r)
    return [(q, r) for q, key in enumerate(queries.keys) for r in index.get(key, ()) if not same or r < q]


def ngram_pairs(
    queries: Corpus, references: Corpus, settings: MatchSettings, same: bool = False, chunk: int = 20_000
) -> list[tuple[int, int, float]]:
    """Pairs whose n-gram containment reaches the threshold, counted with sorted arrays.

    Boilerplate n-grams (in more than `common_ngram` references) are left out of both the
    shared count and the sizes: "<v1> be positive integer" says nothing about which problem it is.
    """
    ref_doc = np.repeat(np.arange(len(references)), references.sizes)
    order = np.argsort(references.hashes, kind="stable")
    ref_hash, ref_doc_sorted = references.hashes[order], ref_doc[order]
    distinct, first, count = np.unique(ref_hash, return_index=True, return_counts=True)
    common = distinct[count > settings.common_ngram]
    useful = count <= settings.common_ngram
    distinct, first, count = distinct[useful], first[useful], count[useful]
    query_sizes = _informative_sizes(queries, common)
    ref_sizes = _informative_sizes(references, common)
    results: list[tuple[int, int, float]] = []
    for start in range(0, len(queries), chunk):
        stop = min(start + chunk, len(queries))
        hashes = queries.hashes[queries.offsets[start] : queries.offsets[stop]]
        docs = np.repeat(np.arange(start, stop), queries.sizes[start:stop])
        slot = np.searchsorted(distinct, hashes).clip(max=max(len(distinct) - 1, 0))
        hit = distinct[slot] == hashes if len(distinct) else np.zeros(len(hashes), dtype=bool)
        slot, docs = slot[hit], docs[hit]
        # Each hit stands for every reference holding that n-gram: expand to (query, reference).
        repeats = count[slot]
        q = np.repeat(docs, repeats)
        within = np.arange(repeats.sum()) - np.repeat(np.cumsum(repeats) - repeats, repeats)
        r = ref_doc_sorted[np.repeat(first[slot], repeats) + within]
        if same:
            q, r = q[r < q], r[r < q]
        pair_ids, shared = _counted(q.astype(np.int64) * len(references) + r)
        q, r = pair_ids // len(references), pair_ids % len(references)
        score = shared / np.maximum(np.minimum(query_sizes[q], ref_sizes[r]), 1)
        keep = score >= settings.ngram_threshold
        results += zip(q[keep].tolist(), r[keep].tolist(), score[keep].tolist(), strict=True)
    return results


def _informative_sizes(corpus: Corpus, common: np.ndarray) -> np.ndarray:
    """Per text, how many of its n-grams are not boilerplate."""
    doc = np.repeat(np.arange(len(corpus)), corpus.sizes)
    return np.bincount(doc[~np.isin(corpus.hashes, common)], minlength=len(corpus))


def _counted(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values and how often each occurs (by sorting: faster here than np.unique)."""
    values = np.sort(values)
    starts = np.flatnonzero(np.concatenate(([True], values[1:] != values[:-1]))) if values.size else np.zeros(0, dtype=np.int64)
    return values[starts], np.diff(np.append(starts, values.size))


def minhash_pairs(
    queries: Corpus, references: Corpus, settings: MatchSettings, same: bool, progress: Progress | None = None
) -> list[tuple[int, int, float]]:
    """Candidates from MinHashLSH, kept when their estimated Jaccard similarity reaches the threshold."""
    lsh = MinHashLSH(threshold=settings.minhash_threshold, num_perm=settings.num_perm)
    ref_sketches = references.sketches(settings.num_perm)
    with lsh.insertion_session() as session:
        for r, sketch in enumerate(ref_sketches):
            if references.sizes[r]:
                session.insert(r, sketch, check_duplication=False)
    query_sketches = ref_sketches if same else queries.sketches(settings.num_perm)
    results: list[tuple[int, int, float]] = []
    for q, sketch in enumerate(query_sketches):
        if queries.sizes[q]:
            for r in lsh.query(sketch):
                if same and r >= q:
                    continue
                score = float(np.mean(sketch.hashvalues == ref_sketches[r].hashvalues))
                if score >= settings.minhash_threshold:
                    results.append((q, r, score))
        if progress and (q + 1) % 1000 == 0:
            progress(1000)
    if progress:
        progress(len(query_sketches) % 1000)
    return results
