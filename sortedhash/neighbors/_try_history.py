"""What ``algorithm="auto"`` remembers between k-NN calls of a few queries.

A call of a few queries is too small to time both ways: its queries try multi-index
hashing within about what scanning them would cost, and those that overrun that are
scanned. Where MIH loses (uniform codes, or k large for the codes' spread) every such call
pays the try on top of the scan: on 1M uniform 64-bit codes, one query a call, ~25-40 us
beside a ~110-130 us scan. So the estimator remembers, for each kind of call (k and the
number of queries), the share of its recent tries that lost (cost more MIH work than
scanning would have): an average that weighs each newer try by a quarter. A try is a
query where the scan would take the queries one at a time, and a whole call where it would
take them as a group (their summed work against the group's scan). Above three quarters,
calls of that kind are scanned without a try, and MIH is tried again after 2, then 4, 8,
... up to :data:`MAX_WAIT` such calls (the wait doubles when most of a retry lost); once
the share is back under three quarters, every call tries again.

Only a share that high stops the tries: a try's outcome is noisy, and where MIH loses
some queries but wins the rest by far (learned codes: 1M codes, k = 100, ~15 % of the
queries overrun), trying still pays. Tries that lose one time in four stop them in about
1 % of the calls, one time in two in 5-45 % (more the fewer tries a call), four times in
five or more in ~95 % (simulated). The decisions follow the work the queries did,
not timings, so they are reproducible; only the speed depends on them, never the results.
"""

__all__ = ["MAX_WAIT", "TryHistory"]

MAX_WAIT = 64  # calls scanned between two retries, at most: a retry then costs ~1/64 of its try
_WEIGHT = 0.25  # of each newer try in the share
_STOP_SHARE = 0.75  # of tries lost, above which calls stop trying
_FIRST_WAIT = 2


class TryHistory:
    """For each kind of call (any hashable key): the share of its recent MIH tries that
    lost, and the calls left to scan before the next try."""

    def __init__(self):
        self._by_key = {}  # key -> [share lost, calls left to scan, current wait]

    def scan_without_try(self, key):
        """Whether this call goes to the scan without trying MIH; counts the call."""
        state = self._by_key.get(key)
        if state is None or state[1] == 0:
            return False
        state[1] -= 1
        return True

    def record(self, key, tried, lost):
        """Account for a call of ``tried`` tries, ``lost`` of which cost more than the scan
        would have."""
        if tried <= 0:
            return
        share, _, wait = self._by_key.get(key, (0.5, 0, 0))
        kept = (1 - _WEIGHT) ** tried
        share = share * kept + (lost / tried) * (1 - kept)
        if share <= _STOP_SHARE:
            wait = 0
        elif wait == 0:
            wait = _FIRST_WAIT
        elif 2 * lost > tried:  # a retry that lost too
            wait = min(2 * wait, MAX_WAIT)
        self._by_key[key] = [share, wait, wait]
