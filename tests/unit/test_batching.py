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
