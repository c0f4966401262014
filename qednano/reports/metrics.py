"""The numbers behind reports: pass@k, mean@k, best@k, bootstrap intervals, paired tests.

Pure functions on plain numbers; the report and comparison modules decide what to feed them.
Every random draw takes a seed, so a report computed twice prints the same interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb, prod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# numpy is imported inside the functions that use it: resuming a finished run reuses its report
# and need not pay for the import (a tenth of a second).


def _check_k(n: int, k: int) -> None:
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of samples n={n}, got k={k}")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chance that at least one of k samples, drawn without replacement from n, passes.

    `c` of the `n` samples pass. The unbiased estimator is 1 - C(n-c, k) / C(n, k); the ratio
    is computed as the product of (1 - k/i) for i = n-c+1 .. n, which never forms the huge
    binomials (the form used for HumanEval).
    """
    _check_k(n, k)
    if not 0 <= c <= n:
        raise ValueError(f"passing samples c must be between 0 and n={n}, got c={c}")
    if n - c < k:  # every draw of k must include a passing sample
        return 1.0
    return 1.0 - prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def mean_at_k(scores: Sequence[float], k: int) -> float:
    """Expected mean score of k samples drawn without replacement from `scores`.

    This is simply the mean of all n scores: each sample lands in the draw with probability
    k/n, so the expected sum of the draw is (k/n) * sum(scores) and its expected mean is
    sum(scores) / n, whatever k is. It is kept as a function so reports say so explicitly.
    """
    import numpy as np

    _check_k(len(scores), k)
    return float(np.mean(scores))


def best_at_k(scores: Sequence[float], k: int) -> float:
    """Expected best score of k samples drawn without replacement from `scores` (exact).

    Sort the scores s_1 <= ... <= s_n. The best of a draw is s_i exactly when s_i is drawn and
    the other k-1 come from the i-1 below it: C(i-1, k-1) of the C(n, k) draws. Ties do not
    matter because equal scores give the same maximum whichever copy is counted.
    """
    n = len(scores)
    _check_k(n, k)
    ordered = sorted(scores)
    draws = comb(n, k)
    # Python ints keep the binomials exact; int / int rounds once, correctly.
    return float(sum(s * (comb(i - 1, k - 1) / draws) for i, s in enumerate(ordered, start=1) if i >= k))


def bootstrap_ci(values: Sequence[float], n_boot: int = 10_000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values`.

    Callers pass one value per problem (the problem's mean score), so problems are resampled
    with replacement, not samples: samples of one problem are correlated, and resampling them
    as if independent would make the interval too narrow.
    """
    import numpy as np

    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, data.size, size=(n_boot, data.size))
    means = data[picks].mean(axis=1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def paired_differences(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    """a - b, element by element; the two runs' per-problem means in the same problem order."""
    import numpy as np

    first, second = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if first.shape != second.shape:
        raise ValueError(f"paired values need equal lengths, got {first.size} and {second.size}")
    return first - second


def paired_bootstrap_ci(a: Sequence[float], b: Sequence[float], n_boot: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of mean(a - b), resampling problems (pairs stay together)."""
    return bootstrap_ci(paired_differences(a, b), n_boot=n_boot, seed=seed)


def sign_flip_p_value(a: Sequence[float], b: Sequence[float], n_resamples: int = 9_999, seed: int = 0) -> float:
    """Two-sided paired permutation test of "a and b score the same on average".

    Under the null each problem's difference a - b is as likely to have either sign, so the
    null distribution of the mean difference comes from flipping signs. scipy enumerates all
    2^m flips when 2^m <= n_resamples (exact for up to 13 problems by default) and draws
    `n_resamples` random flips otherwise. The two-sided p-value is twice the smaller tail,
    capped at 1. Identical runs (all differences zero) give 1.
    """
    import numpy as np
    from scipy.stats import permutation_test  # seconds to import; only comparisons need it

    diffs = paired_differences(a, b)
    if diffs.size == 0:
        raise ValueError("sign_flip_p_value needs at least one paired value")
    result = permutation_test(
        (diffs,),
        lambda d, axis: np.mean(d, axis=axis),
        permutation_type="samples",  # with one sample, scipy flips the signs of observations
        vectorized=True,
        n_resamples=n_resamples,
        alternative="two-sided",
        rng=np.random.default_rng(seed),
    )
    return float(result.pvalue)
