"""The raw-text model's Prometheus counters: rows tokenized, time spent tokenizing, requests dropped."""

from __future__ import annotations

COUNTERS = {
    "calls": ("text_tokenize_calls_total", "Executes whose rows were tokenized together"),
    "rows": ("text_tokenize_rows_total", "Texts (or pairs) tokenized"),
    "duration_us": ("text_tokenize_duration_us_total", "Time spent tokenizing, microseconds"),
    "dropped": (
        "text_requests_dropped_total",
        "Requests answered CANCELLED before tokenization and the forward pass: their caller no "
        "longer waits. reason expired: the request carried a timeout (a deadline), cancelled: it did not",
    ),
}
