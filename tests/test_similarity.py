"""Normalization: rewrites of one problem read the same; different problems do not."""

import numpy as np
import pytest

from qednano.data.matching import Corpus, MatchSettings, find_matches
from qednano.data.similarity import Hasher, exact_key, tokenize

SAME = [
    (r"Compute $\frac{a+1}{b}$.", r"Compute $(a+1)/b$."),
    (r"Let $\left( x+1 \right)^2 = y$.", r"Let $(x+1)^2 = y$."),
    (r"Show that $x \leq y$.", r"Prove that \(x \le y\)."),
    (r"Show that $x \leq y$.", "Prove that x ≤ y."),
    (r"Let $x$ be real with $x^2 + y = 3$.", r"Let $u$ be real with $u^2 + v = 3$."),
    (r"Let $ABC$ be a triangle and $M$ the midpoint of $BC$.", r"Let $XYZ$ be a triangle and $P$ the midpoint of $YZ$."),
    ("Let $n$ be 2024.", "Let $n$ be 2025."),
    (r"Find $n$ such that $$n^2 = 4.$$", r"Find $n$ such that \[n^2 = 4.\]"),
    ("Determine all positive integers $n$.", "Find all positive integers $n$."),
    (r"Let $f(x) = \dfrac12 x$.", r"Let $f(x) = 1/2 x$."),
    (r"Show $x^2 + y^2 \ge xyzt$.", r"Show $a^2 + b^2 \ge abcd$."),
]
DIFFERENT = [
    ("$x + y = 1$", "$x - y = 1$"),
    ("$x^2 + y = 1$", "$x^2 + x = 1$"),  # which variable repeats is part of the problem
    ("Find the largest $n$.", "Find the smallest $n$."),
    ("Let $n$ be a prime.", "Let $n$ be a square."),
    ("$\\gcd(a, b) = 1$", "$\\max(a, b) = 1$"),
    ("$gcd(a, b) = 1$", "$lcm(a, b) = 1$"),
]


@pytest.mark.parametrize(("one", "other"), SAME)
def test_rewrites_of_a_statement_tokenize_the_same(one, other):
    assert tokenize(one) == tokenize(other)


@pytest.mark.parametrize(("one", "other"), DIFFERENT)
def test_different_statements_tokenize_differently(one, other):
    assert tokenize(one) != tokenize(other)


def test_reordered_sentences_share_the_exact_key_and_variables_are_numbered_per_sentence():
    one = "Let $x$ be a real number. Suppose $y > x$. Find the least $y$."
    other = "Find the least $b$. Let $a$ be a real number. Suppose $b > a$."
    assert exact_key(tokenize(one)) == exact_key(tokenize(other))
    assert exact_key(tokenize(one)) != exact_key(tokenize("Let $x$ be a real number. Find the least $y$."))
    assert tokenize("Suppose $y > x$.") == [["<v1>", ">", "<v2>"]]  # "suppose" is "let", a stop word


def test_item_labels_and_their_numbering_read_the_same():
    assert tokenize("Conditions:\n(i) $f$ is odd.\n(ii) $f(0)=1$.") == tokenize("Conditions:\n1. $f$ is odd.\n2. $f(0)=1$.")


def test_ngram_hashes_of_a_batch_equal_those_of_each_text_alone():
    hasher = Hasher(3)
    texts = ["Find all $n$ with $n^2 = 4$. Then prove it.", "Short.", "", "Let $p$ be prime and $q = p + 2$ prime too."]
    keys, hashes, counts = hasher.fingerprint_many(texts)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    for i, text in enumerate(texts):
        alone_keys, alone, _ = hasher.fingerprint_many([text])
        assert alone_keys == [keys[i]]
        assert np.array_equal(alone, hashes[offsets[i] : offsets[i + 1]])
    assert counts[2] == 0  # an empty text has no n-grams
    assert counts[1] == 1  # a sentence shorter than n is one n-gram


def test_each_method_finds_what_it_should():
    hasher = Hasher(3)
    references = Corpus.build(
        [
            "Let $n$ be a positive integer. Prove that $n^3 - n$ is divisible by $6$.",
            "Find all functions $f$ from the reals to the reals with $f(x + f(y)) = f(x) + y$ for all $x, y$.",
        ],
        hasher,
    )
    queries = Corpus.build(
        [
            "Show that $m^3 - m$ is divisible by $6$. Let $m$ be a positive integer.",  # reordered, renamed: exact
            "Determine every function $g$ from the reals to the reals with $g(a + g(b)) = g(a) + b$ whenever $a, b$ are real.",
            "A cube has $8$ vertices. How many edges does it have?",
        ],
        hasher,
    )
    pairs = find_matches(queries, references, MatchSettings())
    assert [(p.query, p.reference, p.method) for p in pairs] == [(0, 0, "exact"), (1, 1, "ngram")]
    assert "minhash" in pairs[1].methods
    only_minhash = find_matches(queries, references, MatchSettings(methods=("minhash",)))
    assert [(p.query, p.reference) for p in only_minhash] == [(0, 0), (1, 1)]


def test_dedup_mode_pairs_each_text_with_earlier_ones_only():
    hasher = Hasher(3)
    corpus = Corpus.build(["Prove that $2 + 2 = 4$.", "A cube has $8$ vertices.", "Show that $2+2=4$.", "Prove that $2 + 2 = 4$."], hasher)
    pairs = find_matches(corpus, corpus, MatchSettings(), same=True)
    assert sorted((p.query, p.reference) for p in pairs) == [(2, 0), (3, 0), (3, 2)]


def test_planted_variants_really_rewrite_the_statement():
    from qednano.data.variants import VARIANTS

    statement = "Let $x$ be a real number with $\\frac{x}{2} \\leq 3$. Prove that (i) $x \\leq 6$ holds for all 10 cases."
    rewritten = {name: rewrite(statement) for name, rewrite in VARIANTS.items()}
    assert all(text != statement for text in rewritten.values())
    assert "Show that" in rewritten["reworded"] and "Problem 7." in rewritten["renumbered"] and "11 cases" in rewritten["renumbered"]
    assert "$x$" not in rewritten["renamed"] and "\\frac" in rewritten["renamed"] and "\\leq" in rewritten["renamed"]
    assert "$" not in rewritten["latex"] and "\\frac" not in rewritten["latex"] and "\\(" in rewritten["latex"]
    assert rewritten["reordered"].startswith("Prove that")
