"""Forwards cut to fit the callers' deadlines (clf_serving.deadlines)."""

from clf_serving.deadlines import TokenRate, chunk_tokens, chunks, needs_s


def test_no_timeout_or_no_measured_speed_means_one_forward():
    assert chunk_tokens([0, 0], tokens_per_s=4000.0) is None
    assert chunk_tokens([500_000], tokens_per_s=None) is None


def test_chunk_takes_half_the_shortest_timeout_at_the_measured_speed():
    assert chunk_tokens([2_000_000, 500_000, 0], tokens_per_s=4000.0) == 1000  # 0.5 s × 0.5 × 4000 tokens/s
    assert chunk_tokens([100], tokens_per_s=4000.0) == 1  # never less than one token


def test_chunks_keep_request_order_never_split_a_request_and_skip_requests_without_tokens():
    assert chunks([2, 0, 3, 4, 1], limit=None) == [[0, 2, 3, 4]]
    assert chunks([2, 0, 3, 4, 1], limit=5) == [[0, 2], [3, 4]]
    assert chunks([7, 1], limit=3) == [[0], [1]]
    assert chunks([0, 0], limit=3) == []


def test_token_rate_is_a_moving_average_that_ignores_empty_forwards():
    rate = TokenRate(weight=0.5)
    rate.record(0, 1.0)
    assert rate.tokens_per_s is None and rate.seconds_for(500) == 0.0
    rate.record(1000, 1.0)
    rate.record(3000, 1.0)
    assert rate.tokens_per_s == 2000.0 and rate.seconds_for(500) == 0.25


def test_a_request_needs_its_chunks_time_but_never_more_than_the_chunk_share_of_its_timeout():
    assert needs_s(chunk_s=0.2, timeout_us=500_000) == 0.2
    # One request too big for a chunk alone: still tried, so a slow estimate cannot starve it forever.
    assert needs_s(chunk_s=3.0, timeout_us=500_000) == 0.25
