import itertools

import numpy as np

from distilbert_serving.outcomes import row_spans
from distilbert_serving.token_model.batching import plan_forwards


def covered(chunks):
    return sorted(int(i) for chunk in chunks for i in chunk)


def test_every_sequence_lands_in_exactly_one_forward():
    lengths = np.random.default_rng(0).integers(1, 300, size=200)
    chunks = plan_forwards(lengths, overhead_tokens=16, max_tokens=4096)
    assert covered(chunks) == list(range(200))


def test_chunks_are_length_sorted_and_respect_the_token_cap():
    lengths = np.random.default_rng(1).integers(1, 300, size=100)
    chunks = plan_forwards(lengths, overhead_tokens=16, max_tokens=2048)
    previous_max = 0
    for chunk in chunks:
        assert lengths[chunk].min() >= previous_max
        previous_max = lengths[chunk].max()
        assert len(chunk) == 1 or len(chunk) * lengths[chunk].max() <= 2048


def test_equal_lengths_share_one_forward():
    assert [len(c) for c in plan_forwards([10] * 32, overhead_tokens=16, max_tokens=8192)] == [32]


def test_a_long_outlier_gets_its_own_forward_rather_than_padding_everyone():
    chunks = plan_forwards([8] * 30 + [500], overhead_tokens=16, max_tokens=1 << 20)
    assert sorted(len(c) for c in chunks) == [1, 30]


def test_padding_waste_is_small_on_mixed_lengths():
    lengths = np.random.default_rng(2).lognormal(3.0, 0.8, size=64).astype(int) + 3
    chunks = plan_forwards(lengths, overhead_tokens=16, max_tokens=8192)
    computed = sum(len(c) * lengths[c].max() for c in chunks)
    assert computed / lengths.sum() - 1 < 0.15


def test_no_sequences_means_no_forwards():
    assert plan_forwards([], overhead_tokens=16, max_tokens=8192) == []


def test_token_budget_groups_cover_everything_within_budget():
    from distilbert_serving.token_model.batching import token_budget_groups

    lengths = np.random.default_rng(3).integers(1, 512, size=300)
    groups = token_budget_groups(lengths, max_tokens=2048)
    assert covered(groups) == list(range(300))
    assert all(lengths[g].sum() <= 2048 or len(g) == 1 for g in groups)


def test_geometric_rounding_adds_at_most_an_eighth_and_few_distinct_sizes():
    from distilbert_serving.token_model.batching import round_up_geometric

    sizes = [round_up_geometric(n) for n in range(1, 5000)]
    assert all(n <= size <= max(n, 1.125 * n) for n, size in zip(range(1, 5000), sizes, strict=True))
    assert len(set(sizes)) < 90


def test_row_spans_place_each_requests_rows_and_skip_errors():
    entries = [["a", "b"], ValueError("input_ids is required"), ["c"]]
    assert row_spans(entries) == [slice(0, 2), None, slice(2, 3)]


def cost(lengths, chunks, overhead_tokens):
    return sum(len(c) * int(lengths[c].max()) + overhead_tokens for c in chunks)


def least_cost(sorted_lengths, overhead_tokens, max_tokens):
    """Every cut of the sorted lengths into runs, by brute force."""
    n, least = len(sorted_lengths), float("inf")
    for cuts in range(1 << (n - 1)):
        bounds = [0, *(i + 1 for i in range(n - 1) if cuts >> i & 1), n]
        runs = [sorted_lengths[a:b] for a, b in itertools.pairwise(bounds)]
        if all(len(r) == 1 or len(r) * r[-1] <= max_tokens for r in runs):
            least = min(least, sum(len(r) * r[-1] + overhead_tokens for r in runs))
    return least


def test_the_plan_costs_the_least_of_every_way_to_cut_the_sorted_lengths():
    rng = np.random.default_rng(3)
    for _ in range(200):
        lengths = rng.integers(1, 120, size=int(rng.integers(1, 11)))
        overhead, cap = int(rng.integers(0, 80)), int(rng.integers(100, 600))
        chunks = plan_forwards(lengths, overhead_tokens=overhead, max_tokens=cap)
        assert covered(chunks) == list(range(len(lengths)))
        assert cost(lengths, chunks, overhead) == least_cost(sorted(lengths.tolist()), overhead, cap)


def test_a_long_batch_gets_a_plan_of_the_least_cost_too():
    # Past a few dozen candidate starts the search runs in numpy; a plain dynamic programme is the reference.
    lengths = np.random.default_rng(4).lognormal(3.5, 0.7, size=300).astype(int) + 3
    for overhead, cap in ((64, 1 << 16), (16, 2048)):
        chunks = plan_forwards(lengths, overhead_tokens=overhead, max_tokens=cap)
        assert covered(chunks) == list(range(300))
        ordered, best = sorted(lengths.tolist()), [0]
        for j in range(1, 301):
            fits = [i for i in range(j) if j - i == 1 or (j - i) * ordered[j - 1] <= cap]
            best.append(min(best[i] + (j - i) * ordered[j - 1] + overhead for i in fits))
        assert cost(lengths, chunks, overhead) == best[-1]
