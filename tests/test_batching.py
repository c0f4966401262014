"""Continuous batching against a stand-in decoder whose outputs depend on each row's whole cache."""

from __future__ import annotations

import numpy as np
import pytest
from history_decoder import VOCAB, HistoryDecoder

from qednano.llm.batching import CHUNK, Batcher, Sequence, pick
from qednano.llm.types import Sampling

END = 2
GREEDY = Sampling(temperature=0)


def letters(tokens: list[int]) -> str:
    return "".join(chr(ord("a") + t % 26) for t in tokens)


def run(sequences: list[Sequence], rows: int = 4, arrivals: dict[int, list[Sequence]] | None = None,
        decoder: HistoryDecoder | None = None) -> Batcher:
    """Advance until everything finished; `arrivals[k]` join after k units of work."""
    batcher = Batcher(decoder or HistoryDecoder(rows, end=END), rows, {END}, letters)
    for sequence in sequences:
        batcher.add(sequence)
    arrivals = dict(arrivals or {})
    work = 0
    while batcher.busy or arrivals:
        for sequence in arrivals.pop(work, []):
            batcher.add(sequence)
        batcher.advance()
        work += 1
    return batcher


def prompt(length: int, salt: int) -> list[int]:
    return [(salt * 31 + i * 7) % (VOCAB - 3) + 3 for i in range(length)]


def alone(ids: list[int], sampling: Sampling, max_new: int, end: int | None = END) -> list[int]:
    sequence = Sequence(ids, sampling, max_new)
    run([sequence], rows=1, decoder=HistoryDecoder(1, end=end))
    return sequence.tokens


def test_rows_of_different_lengths_decode_together_exactly_as_alone():
    # Prompts longer than a chunk, rows that end at different steps (their slots are refilled by
    # moving others), more sequences than rows, and late arrivals that join running batches.
    shapes = [(5, 40), (CHUNK + 37, 25), (1, 60), (12, 3), (2 * CHUNK + 1, 30), (30, 1), (7, 45), (9, 20)]
    made = [Sequence(prompt(n, salt), GREEDY, max_new) for salt, (n, max_new) in enumerate(shapes)]
    batcher = run(made[:5], rows=3, arrivals={4: made[5:7], 30: made[7:]})
    for sequence in made:
        assert sequence.finish in ("stop", "length")
        assert sequence.tokens == alone(sequence.ids, GREEDY, sequence.max_new)
    assert max(batcher.decoder.steps) == 3  # rows were really shared


def test_a_seeded_sample_is_the_same_alone_and_beside_others():
    seeded = Sampling(temperature=1.0, seed=11)
    first = Sequence(prompt(6, 1), seeded, 40)
    others = [Sequence(prompt(9 + i, i + 2), Sampling(temperature=1.0, seed=i), 40) for i in range(3)]
    run([others[0], first, *others[1:]], rows=4)
    assert first.tokens == alone(first.ids, seeded, 40)
    assert first.tokens != alone(first.ids, Sampling(temperature=1.0, seed=12), 40)  # the seed matters
    assert first.tokens != alone(first.ids, GREEDY, 40)  # and it really samples


def test_the_end_token_stops_a_row_and_is_counted():
    sequence = Sequence(prompt(4, 3), GREEDY, 500)
    run([sequence])
    assert sequence.finish == "stop" and sequence.tokens[-1] == END and END not in sequence.tokens[:-1]


def test_a_row_ends_at_its_token_budget():
    sequence = Sequence(prompt(4, 3), GREEDY, 2)
    run([sequence], decoder=HistoryDecoder(4, end=None))
    assert sequence.finish == "length" and len(sequence.tokens) == 2


def test_a_stop_string_split_over_tokens_ends_the_row():
    free = Sequence(prompt(3, 5), GREEDY, 30)
    run([free], decoder=HistoryDecoder(4, end=None))
    stop = letters(free.tokens)[10:13]  # three letters = three tokens, ending at token 13
    stopped = Sequence(prompt(3, 5), Sampling(temperature=0, stop=("zzzz", stop)), 30)
    run([stopped], decoder=HistoryDecoder(4, end=None))
    assert stopped.finish == "stop"
    assert stopped.tokens == free.tokens[: letters(free.tokens).index(stop) + 3]


def test_a_cancelled_row_is_dropped_before_the_next_step_and_its_slot_reused():
    decoder = HistoryDecoder(2, end=None)
    batcher = Batcher(decoder, 2, {END}, letters)
    long, other = Sequence(prompt(5, 1), GREEDY, 10_000), Sequence(prompt(8, 2), GREEDY, 50)
    batcher.add(long)
    batcher.add(other)
    for _ in range(10):
        batcher.advance()
    long.cancelled.set()
    made = len(long.tokens)
    late = Sequence(prompt(3, 9), GREEDY, 20)
    batcher.add(late)
    while batcher.busy:
        batcher.advance()
    assert len(long.tokens) == made and long.finish is None
    assert other.tokens == alone(other.ids, GREEDY, 50, end=None)
    assert late.tokens == alone(late.ids, GREEDY, 20, end=None)
    assert max(decoder.steps) == 2


def test_waiting_and_filling_sequences_can_be_cancelled_too():
    batcher = Batcher(HistoryDecoder(1, end=None), 1, {END}, letters)
    running, waiting = Sequence(prompt(3, 1), GREEDY, 5), Sequence(prompt(3, 2), GREEDY, 5)
    filling = Sequence(prompt(2 * CHUNK, 3), GREEDY, 5)
    for sequence in (filling, running, waiting):
        batcher.add(sequence)
    batcher.advance()  # the first chunk of `filling`
    filling.cancelled.set()
    waiting.cancelled.set()
    while batcher.busy:
        batcher.advance()
    assert running.finish == "length" and filling.tokens == [] and waiting.tokens == []


def greedy_draws(logits: np.ndarray, sampling: Sampling, n: int = 200, seed: int = 0) -> set[int]:
    rng = np.random.default_rng(seed)
    return {pick(logits, sampling, rng) for _ in range(n)}


def test_pick_greedy_top_k_and_top_p():
    logits = np.array([0.0, 3.0, 2.9, 1.0, -1.0])
    assert greedy_draws(logits, Sampling(temperature=0)) == {1}
    assert greedy_draws(logits, Sampling(temperature=1, top_k=1)) == {1}
    assert greedy_draws(logits, Sampling(temperature=1, top_k=2)) == {1, 2}
    assert greedy_draws(logits, Sampling(temperature=1, top_p=0.3)) == {1}  # 1 alone holds ~0.45
    assert greedy_draws(logits, Sampling(temperature=1, top_p=0.6)) == {1, 2}
    assert greedy_draws(logits, Sampling(temperature=1), n=2000) == {0, 1, 2, 3, 4}


@pytest.mark.parametrize("sampling", [Sampling(temperature=0.7, seed=3), Sampling(temperature=1, top_k=3, top_p=0.9)])
def test_pick_is_reproducible_from_a_seed(sampling):
    logits = np.random.default_rng(0).normal(size=100)

    def draws(seed: int) -> list[int]:
        rng = np.random.default_rng(seed)
        return [pick(logits, sampling, rng) for _ in range(30)]

    assert draws(5) == draws(5) and draws(5) != draws(6) and len(set(draws(5))) > 1
