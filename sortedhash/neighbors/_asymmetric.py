"""Compiled asymmetric scoring of candidate codes: the query's real-valued scores against
each candidate's bits (numba).

The optional middle stage of :class:`~sortedhash.neighbors.RerankedNeighbors`: of each
query's Hamming candidates, keep the ``m`` whose codes agree best with the query's
unbinarised scores (its hasher's ``decision_function``), so that only their float rows are
read. A candidate's score is the sum of the query's scores over the candidate's set bits,
which ranks as the inner product of the scores with the candidate's +-1 code (the two
differ by the sum of the scores, the same for every candidate of a query). It needs the
codes only, which are in memory, where the float rows may be on disk or in slow memory.
"""

import numpy as np
from numba import prange

from ._jit import njit
from ._kernels import _prefetch_l2
from ._threads import run_on_threads

__all__ = ["best_by_asymmetric_score"]

# Candidate codes requested this many candidates ahead of their use (random rows of the
# codes, as for the float rows of the re-ranking; 8, 16 and 32 measured about even).
_AHEAD = 16


@njit(nogil=True, inline="always")
def _byte_tables(scores, tables):
    """``tables[p, v]``: the sum of ``scores[8 p + i]`` over the bits ``i`` set in byte value
    ``v`` (scores past the end count 0). Each bit doubles the filled part of a row: 255 adds
    a byte, vectorised, instead of 8 a value."""
    for p in range(tables.shape[0]):
        tables[p, 0] = 0.0
        for i in range(8):
            j = 8 * p + i
            w = scores[j] if j < scores.shape[0] else 0.0
            step = 1 << i
            for v in range(step):
                tables[p, step + v] = tables[p, v] + w


@njit(nogil=True, inline="always")
def _prefetch_code(codes, row):
    """Start loading a code's bytes: its first and last (a 48-byte code crosses a 64-byte
    line for every other row)."""
    _prefetch_l2(codes, row, 0)
    _prefetch_l2(codes, row, codes.shape[1] - 1)


@njit(nogil=True, inline="always")
def _code_score(tables, code):
    """The sum of ``tables[p, code[p]]``, in four partial sums: one chain of dependent adds
    waits ~4 cycles an add (1M random 384-bit codes, 1,500 random candidates a query, one
    thread of an Intel Xeon: 82 us a query with one sum, 64 with four)."""
    n_bytes = code.shape[0]
    a = b = c = d = 0.0
    p = 0
    while p + 4 <= n_bytes:
        a += tables[p, code[p]]
        b += tables[p + 1, code[p + 1]]
        c += tables[p + 2, code[p + 2]]
        d += tables[p + 3, code[p + 3]]
        p += 4
    while p < n_bytes:
        a += tables[p, code[p]]
        p += 1
    return (a + b) + (c + d)


@njit(parallel=True, nogil=True)
def _best_by_score(codes, scores, candidates, m, out):
    n_queries, n_candidates = candidates.shape
    n_bytes = codes.shape[1]
    for q in prange(n_queries):
        tables = np.empty((n_bytes, 256))
        _byte_tables(scores[q], tables)
        rows = candidates[q]
        score = np.empty(n_candidates)
        for c in range(min(_AHEAD, n_candidates)):
            _prefetch_code(codes, rows[c])
        for c in range(n_candidates):
            if c + _AHEAD < n_candidates:
                _prefetch_code(codes, rows[c + _AHEAD])
            score[c] = _code_score(tables, codes[rows[c]])
        # The m best: every score above the m-th highest, then the rows at it, lowest first.
        cut = np.partition(score, n_candidates - m)[n_candidates - m]
        kept = 0
        for c in range(n_candidates):
            if score[c] > cut:
                out[q, kept] = rows[c]
                kept += 1
        if kept < m:
            tied = np.sort(rows[score == cut])
            out[q, kept:] = tied[:m - kept]


def best_by_asymmetric_score(codes, scores, candidates, m, n_threads=None):
    """Each query's ``m`` candidates whose codes score highest against its scores.

    Parameters
    ----------
    codes : ndarray of shape (n_rows, n_bytes), uint8
        The database's packed codes (bit ``j`` in byte ``j // 8`` at position ``j % 8``).
    scores : ndarray of shape (n_queries, n_bits)
        Each query's real-valued scores, whose signs would be its bits (``n_bits <= 8 *
        n_bytes``).
    candidates : ndarray of shape (n_queries, n_candidates), int64
        Each query's candidate rows, distinct.
    m : int
        Candidates kept per query (1 <= m <= n_candidates).
    n_threads : int, default=None
        numba threads; None uses numba's current setting.

    Returns
    -------
    kept : ndarray of shape (n_queries, m), int64
        The kept rows, in no particular order. Of candidates that score the same, the lower
        rows are kept.
    """
    candidates = np.ascontiguousarray(candidates, dtype=np.int64)
    out = np.empty((len(candidates), m), dtype=np.int64)
    run_on_threads(n_threads, _best_by_score, codes, np.ascontiguousarray(scores, dtype=np.float64), candidates, m,
                   out)
    return out
