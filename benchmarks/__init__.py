"""Benchmarks that print ratios against yardsticks (``python -m benchmarks.compare``); not tests."""
