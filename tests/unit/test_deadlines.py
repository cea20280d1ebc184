"""Forwards cut to fit the callers' deadlines (deadlines)."""

from distilbert_serving.deadlines import TokenRate, chunk_tokens, chunks, too_late, worth_asking


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


def rate(tokens_per_s: float) -> TokenRate:
    return TokenRate(tokens_per_s=tokens_per_s)


def test_requests_whose_answer_would_come_too_late_go_least_time_left_first_until_the_rest_fit():
    # 4 requests of 100 tokens at 1000 tokens/s: all four take 0.4 s (0.48 with the margin); without
    # the most urgent 0.36 s, without the two most urgent 0.24 s.
    left = [0.35, 0.05, None, 0.3]
    assert too_late(left, [100] * 4, [500_000] * 4, rate(1000.0)) == [1, 3]
    assert too_late(left, [100] * 4, [500_000] * 4, rate(10_000.0)) == []  # 0.04 s: all in time
    assert too_late(left, [100] * 4, [500_000] * 4, TokenRate()) == []  # no rate measured yet: none


def test_a_fresh_request_is_always_tried_so_a_slow_estimate_cannot_drop_everything():
    # An estimate of 10 s for the lot: the requests with more than 0.9 of their 0.5 s timeout left stay.
    assert too_late([0.48, 0.2, 0.46], [100] * 3, [500_000] * 3, rate(30.0)) == [1]


def test_triton_is_asked_about_cancelled_requests_only_before_forwards_the_questions_cost_little_of():
    assert worth_asking(1, 0.025)  # one full-size text
    assert worth_asking(16, 0.2)  # sixteen of them
    assert not worth_asking(16, 0.003)  # a small model's batch, however slow the machine made its last forwards
    assert not worth_asking(16, 0.0)  # before the first forward, whose speed is not known yet
