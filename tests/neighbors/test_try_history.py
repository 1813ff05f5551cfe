"""What ``algorithm="auto"`` remembers of its few-query calls' MIH tries."""

import numpy as np

from sortedhash.neighbors._try_history import MAX_WAIT, TryHistory


def _scanned_calls_before_a_try(history, key, limit=1000):
    """How many calls go to the scan before one tries MIH again."""
    for n in range(limit):
        if not history.scan_without_try(key):
            return n
    raise AssertionError("never tried again")


def test_a_kind_of_call_never_seen_tries_mih():
    history = TryHistory()
    assert not history.scan_without_try((10, 1))
    history.record((10, 1), 1, 1)  # one lost query is not enough to stop
    assert not history.scan_without_try((10, 1))


def test_calls_that_keep_losing_wait_twice_as_long_each_time_up_to_the_cap():
    history, key = TryHistory(), (10, 1)
    waits = []
    for _ in range(11):
        history.record(key, 1, 1)
        waits.append(_scanned_calls_before_a_try(history, key))
    # the share lost: 0.62, 0.72, 0.79 (over three quarters), ...
    assert waits == [0, 0, 2, 4, 8, 16, 32, 64, 64, 64, 64]
    assert MAX_WAIT == 64


def test_a_call_of_many_queries_that_all_lost_stops_the_tries_at_once():
    history = TryHistory()
    history.record((10, 12), 12, 12)
    assert _scanned_calls_before_a_try(history, (10, 12)) == 2


def test_retries_that_win_end_the_wait():
    history, key = TryHistory(), (100, 4)
    for _ in range(5):
        history.record(key, 4, 4)
        _scanned_calls_before_a_try(history, key)
    history.record(key, 4, 1)  # the retry: most of its queries won, the share falls under 3/4
    assert _scanned_calls_before_a_try(history, key) == 0


def test_queries_that_lose_now_and_then_rarely_stop_the_tries():
    # One query a call, a quarter of them lost at random: calls scanned without a try
    # stay near 1 % (simulated: 0.01).
    rng = np.random.default_rng(0)
    history, skipped = TryHistory(), 0
    for _ in range(5000):
        if history.scan_without_try("a"):
            skipped += 1
        else:
            history.record("a", 1, int(rng.random() < 0.25))
    assert skipped < 0.03 * 5000


def test_kinds_of_call_are_remembered_apart():
    history = TryHistory()
    history.record((10, 4), 4, 4)
    assert not history.scan_without_try((100, 4))
    assert not history.scan_without_try((10, 1))
    assert history.scan_without_try((10, 4))


def test_calls_that_tried_no_query_change_nothing():
    history = TryHistory()
    history.record("a", 0, 0)
    assert _scanned_calls_before_a_try(history, "a") == 0
