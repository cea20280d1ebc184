"""Forwards cut to fit the callers' deadlines (clf_serving.deadlines)."""

from clf_serving.deadlines import RowRate, chunk_rows, chunks


def test_no_timeout_or_no_measured_speed_means_one_forward():
    assert chunk_rows([0, 0], rows_per_s=100.0) is None
    assert chunk_rows([500_000], rows_per_s=None) is None


def test_chunk_takes_half_the_shortest_timeout_at_the_measured_speed():
    assert chunk_rows([2_000_000, 500_000, 0], rows_per_s=40.0) == 10  # 0.5 s × 0.5 × 40 rows/s
    assert chunk_rows([1_000], rows_per_s=40.0) == 1  # never less than one row


def test_chunks_keep_request_order_never_split_a_request_and_skip_requests_without_rows():
    assert chunks([2, 0, 3, 4, 1], limit=None) == [[0, 2, 3, 4]]
    assert chunks([2, 0, 3, 4, 1], limit=5) == [[0, 2], [3, 4]]
    assert chunks([7, 1], limit=3) == [[0], [1]]
    assert chunks([0, 0], limit=3) == []


def test_row_rate_is_a_moving_average_that_ignores_empty_forwards():
    rate = RowRate(weight=0.5)
    rate.record(0, 1.0)
    assert rate.rows_per_s is None
    rate.record(10, 1.0)
    rate.record(30, 1.0)
    assert rate.rows_per_s == 20.0
