"""Multi-index hashing: exact sublinear Hamming search (numba).

Norouzi, Punjani & Fleet, "Fast Search in Hamming Space with Multi-Index Hashing" (CVPR
2012). Each b-bit code is cut into m disjoint substrings, and table j maps every value of
substring j to the rows that hold it: a dense CSR table, ``offsets`` of length
``2**L + 1`` and the row numbers sorted by key (in index order within a key). Row numbers
take three bytes each below 2**24 rows and four above, read by one unaligned 32-bit load:
the m tables' row numbers are most of the index (1.5 rather than 2 times 64-bit codes at
four tables).

Pigeonhole: a code within distance r of a query is within ``r // m`` of it on at least one
substring. A k-NN query therefore probes every table at substring radius s = 0, 1, ...;
after round s every code within ``m * (s + 1) - 1`` of the query has been seen, so the search
stops once its k-th distance is at most that bound; checked after each table, since after
tables 0..j at radius s every code within ``m * s + j`` has been seen. Every code at the k-th
distance has been seen by then too, so ties by index come out exact.

A code reachable from several probes is counted at the first one only: the smallest s, then
the smallest table, i.e. where its substring distance is the smallest of its substrings.
Checking that needs its substring distances, which sum to its full distance, so deduplication
costs no memory and little time.
"""

import functools
import math

import numpy as np
from numba import prange, types
from numba.extending import intrinsic

from ._jit import njit
from ._kernels import _estimate_kth, _popcount, _prefetch, _sort_by_distance
from ._threads import run_on_threads

__all__ = ["MultiIndex", "build_multi_index", "extend_multi_index", "auto_n_substrings", "mih_knn", "mih_radius",
           "SCAN_CODES_PER_WORK", "probe_count"]

MAX_SUBSTRING_BITS = 30  # tables are dense: 2**L offsets each
_NO_KEY = np.iinfo(np.int64).max
_BATCH = 64  # keys, bucket bounds and candidates loaded together
# A query given a budget that has done this share of it has its k-th distance estimated from
# a sample of the codes (_kernels.estimate_kth), and stops at once if proving that distance
# would overrun the budget.
_CHECK_SHARE = 16


def auto_n_substrings(n_samples, n_bits):
    """Substrings of about log2(N) bits (the paper's rule), rounded so that each dense table
    has no more keys than rows: substrings of ``floor(log2 N)`` bits at most."""
    bits_per_table = max(1, min(int(math.log2(max(n_samples, 2))), MAX_SUBSTRING_BITS))
    return max(1, -(-n_bits // bits_per_table))


# Codes a scan compares in the time MIH spends on one unit of work (a bucket probe or a
# candidate checked), one thread, 64 bits (`research/mih_kernel_ab.py` prints it): 45 to 52
# on uniform codes (1M), where the work is mostly probes of near-empty buckets, and 58 to 77
# on learned codes (10M), where it is mostly candidates (95 to 105 before candidates were
# prefetched). Wider codes make the scan dearer per code and MIH's checks dearer per
# candidate, about equally, so one figure serves every width; erring high makes the budget
# of "two scans" (see HammingNeighbors) a little smaller than that.
SCAN_CODES_PER_WORK = 80


def probe_count(index, radius):
    """Buckets a radius query probes (the tables are walked whole when that is cheaper)."""
    return _probe_count(tuple(int(length) for length in index.lengths), radius // index.n_substrings)


@functools.lru_cache(maxsize=4096)
def _probe_count(lengths, rounds):
    total = 0
    for length in lengths:
        r = min(rounds, length)
        total += min(sum(math.comb(length, s) for s in range(r + 1)), (r + 1) << length)
    return total


class MultiIndex:
    """The m tables of a multi-index over ``n_rows`` codes of ``n_bits`` bits.

    Attributes
    ----------
    starts, lengths : ndarray of shape (m,), int64
        First bit and width of each substring (bit i is bit i % 64 of word i // 64).
    table_starts : ndarray of shape (m + 1,), int64
        Table j's offsets are ``offsets[table_starts[j]:table_starts[j + 1]]``.
    offsets : ndarray, uint32
        Concatenated bucket boundaries of all tables.
    rows : ndarray of shape (m, 3 * n_rows + 1), uint8, or (m, n_rows), uint32
        Row numbers of each table, bucket after bucket: three little-endian bytes each
        (and one byte of padding) below 2**24 rows, else uint32.
    """

    arrays = ("starts", "lengths", "table_starts", "offsets", "rows")

    def __init__(self, starts, lengths, table_starts, offsets, rows):
        self.starts, self.lengths, self.table_starts = starts, lengths, table_starts
        self.offsets, self.rows = offsets, rows

    @property
    def n_substrings(self):
        return len(self.starts)

    @property
    def nbytes(self):
        return sum(getattr(self, name).nbytes for name in self.arrays)

    @property
    def row_bytes(self):
        """Bytes of a row number in ``rows``: 3 or 4."""
        return 3 if self.rows.dtype == np.uint8 else 4


def _row_bytes(n_rows):
    return 3 if n_rows < 2**24 else 4


def _empty_rows(n_substrings, n_rows):
    if _row_bytes(n_rows) == 4:
        return np.empty((n_substrings, n_rows), dtype=np.uint32)
    # One byte more: the four-byte load of the last row number stays inside the table.
    return np.zeros((n_substrings, 3 * n_rows + 1), dtype=np.uint8)


@intrinsic
def _load_u32(typingctx, array, i, byte):
    """The four bytes of the 2-d uint8 ``array`` from ``array[i, byte]``, as one unaligned
    little-endian load, zero-extended to int64."""
    sig = types.int64(array, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        from llvmlite import ir
        from numba.core import cgutils

        data = context.make_array(signature.args[0])(context, builder, args[0])
        stride = cgutils.unpack_tuple(builder, data.strides, 2)[0]
        pointer = builder.gep(data.data, [builder.add(builder.mul(args[1], stride), args[2])])
        value = builder.load(builder.bitcast(pointer, ir.IntType(32).as_pointer()), align=1)
        return builder.zext(value, ir.IntType(64))

    return sig, codegen


@njit(nogil=True, inline="always")
def _row_at(rows, j, p, width):
    """Row number ``p`` of table ``j`` (``rows`` as bytes, ``width`` bytes a number)."""
    return _load_u32(rows, j, p * width) & ((np.int64(1) << (8 * width)) - 1)


@njit(nogil=True, inline="always")
def _set_row(rows, p, width, row):
    """Write row number ``row`` at position ``p`` of one table's bytes ``rows``."""
    for b in range(width):
        rows[p * width + b] = np.uint8((row >> (8 * b)) & 0xFF)


@njit(nogil=True, inline="always")
def _get_row(rows, p, width):
    row = np.int64(0)
    for b in range(width):
        row |= np.int64(rows[p * width + b]) << (8 * b)
    return row


def _substring_layout(n_bits, m):
    lengths = np.full(m, n_bits // m, dtype=np.int64)
    lengths[: n_bits % m] += 1  # the first n_bits % m substrings take one bit more
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return starts, lengths


def build_multi_index(words, n_bits, n_substrings):
    """Tables over the word-major codes ``words`` (n_words, n_rows) from ``pack_words``."""
    starts, lengths = _substring_layout(n_bits, n_substrings)
    if lengths.max() > MAX_SUBSTRING_BITS:
        raise ValueError(
            f"n_substrings={n_substrings} cuts {n_bits}-bit codes into substrings of {lengths.max()} bits; "
            f"the tables are dense (2**bits entries each), so substrings take at most {MAX_SUBSTRING_BITS} "
            f"bits: use n_substrings >= {-(-n_bits // MAX_SUBSTRING_BITS)}"
        )
    n_rows = words.shape[1]
    if n_rows >= 2**32:
        raise ValueError(f"multi-index hashing holds up to 2**32 - 1 codes, not {n_rows}")
    table_starts = np.concatenate([[0], np.cumsum((1 << lengths) + 1)]).astype(np.int64)
    offsets = np.empty(table_starts[-1], dtype=np.uint32)
    rows = _empty_rows(n_substrings, n_rows)
    width = _row_bytes(n_rows)
    for j in range(n_substrings):
        _fill_table(words, starts[j], lengths[j], offsets[table_starts[j]:table_starts[j + 1]],
                    rows[j].view(np.uint8), width)
    return MultiIndex(starts, lengths, table_starts, offsets, rows)


def extend_multi_index(index, words, n_old):
    """The tables of ``index`` (over the first ``n_old`` rows of ``words``) extended with
    the rows after them: the new rows' tables are built alone and merged bucket by bucket
    (new rows after old ones, so index order holds), in linear time."""
    n_rows = words.shape[1]
    if n_rows >= 2**32:
        raise ValueError(f"multi-index hashing holds up to 2**32 - 1 codes, not {n_rows}")
    added = build_multi_index(np.ascontiguousarray(words[:, n_old:]), int(index.starts[-1] + index.lengths[-1]),
                              index.n_substrings)
    offsets = index.offsets.astype(np.int64) + added.offsets
    rows = _empty_rows(index.n_substrings, n_rows)
    for j in range(index.n_substrings):
        t = slice(index.table_starts[j], index.table_starts[j + 1])
        _merge_table(index.offsets[t], index.rows[j].view(np.uint8), index.row_bytes, added.offsets[t],
                     added.rows[j].view(np.uint8), added.row_bytes, n_old, rows[j].view(np.uint8),
                     _row_bytes(n_rows))
    return MultiIndex(index.starts, index.lengths, index.table_starts, offsets.astype(np.uint32), rows)


@njit(nogil=True)
def _merge_table(old_offsets, old_rows, old_width, new_offsets, new_rows, new_width, shift, out, width):
    p = 0
    for key in range(old_offsets.shape[0] - 1):
        for i in range(old_offsets[key], old_offsets[key + 1]):
            _set_row(out, p, width, _get_row(old_rows, i, old_width))
            p += 1
        for i in range(new_offsets[key], new_offsets[key + 1]):
            _set_row(out, p, width, _get_row(new_rows, i, new_width) + shift)
            p += 1


@njit(nogil=True, inline="always")
def _substring(x, start, length):
    """Bits [start, start + length) of the words x (little-endian, length <= 32), as uint64.

    ``x`` ends with one zero word, read in place of the next word when the substring does
    not cross into it: branch-free, and no shift by 64 (undefined in LLVM), which kept
    numba's version of the branch several times slower."""
    w = start >> 6
    o = start & 63
    hi = w + 1 if o + length > 64 else x.shape[0] - 1
    v = (x[w] >> np.uint64(o)) | ((x[hi] << np.uint64(1)) << np.uint64(63 - o))
    return v & ((np.uint64(1) << np.uint64(length)) - np.uint64(1))


@njit(nogil=True)
def _fill_table(words, start, length, offsets, rows, width):
    """Counting sort of the rows by substring key: stable, so index order within a key.
    ``rows`` is the table's bytes, ``width`` bytes a row number."""
    n_rows = words.shape[1]
    x = np.zeros(words.shape[0] + 1, dtype=np.uint64)
    keys = np.empty(n_rows, dtype=np.int64)
    counts = np.zeros((1 << length) + 1, dtype=np.int64)
    for i in range(n_rows):
        for w in range(words.shape[0]):
            x[w] = words[w, i]
        keys[i] = np.int64(_substring(x, start, length))
        counts[keys[i] + 1] += 1
    for key in range(1 << length):
        counts[key + 1] += counts[key]
    for key in range((1 << length) + 1):
        offsets[key] = counts[key]
    for i in range(n_rows):
        _set_row(rows, counts[keys[i]], width, i)
        counts[keys[i]] += 1


@njit(nogil=True, inline="always")
def _substring_masks(starts, lengths, word, low, high):
    """Substring j of a code is ``(x[word[j]] & low[j]) | (x[word[j] + 1] & high[j])``, up to
    a shift: its popcount needs no shift. ``word[j] + 1`` is the padding word (zero) when
    the substring does not cross into the next word."""
    for j in range(starts.shape[0]):
        w = starts[j] >> 6
        o = starts[j] & 63
        end = o + lengths[j]
        word[j] = w
        if end <= 64:
            low[j] = ((np.uint64(1) << np.uint64(lengths[j])) - np.uint64(1)) << np.uint64(o)
            high[j] = np.uint64(0)
        else:
            low[j] = ~((np.uint64(1) << np.uint64(o)) - np.uint64(1))
            high[j] = (np.uint64(1) << np.uint64(end - 64)) - np.uint64(1)


@njit(nogil=True)
def _probe_round(db, query, qkeys, index_arrays, binomials, s, mode, exclude, limit, state, buf, pos, budget):
    """Visit every code first reached at substring radius ``s``.

    mode 0 (k-NN): push (distance << 32 | row) below the current k-th key ``state[1]`` into
    buf, keeping the ``limit`` smallest. mode 1 (radius count): count rows within ``limit``;
    mode 2 (radius fill): also write (row << 16 | distance) at ``buf[pos + count]``.
    ``state`` = [size or count, k-th key, work, done, checkpoint]. Stops early once the work
    passes the checkpoint and :func:`_stop_here` gives the query up (``done`` set to -1, the
    round left incomplete), or in mode 0 once the k-th distance is proven (``done`` 1).

    Keys, bucket bounds, row numbers and codes are each loaded in batches: independent
    loads overlap their cache misses, which a loop that branches on each one in turn
    would serialise (the tables and the codes are far larger than the caches). Each
    bucket's first row numbers and each candidate's code are prefetched as soon as their
    places are known, and a batch of candidates is checked only once the next one has been
    gathered, so their loads have a whole batch of work to arrive in (1.2 to 1.4x faster
    queries on 10M-100M learned codes).
    """
    starts, lengths, table_starts, offsets, rows, width = index_arrays
    n_words = db.shape[0]
    keys = np.empty(_BATCH, dtype=np.int64)
    lo = np.empty(_BATCH, dtype=np.int64)
    hi = np.empty(_BATCH, dtype=np.int64)
    cands = np.empty((2, _BATCH), dtype=np.int64)  # the batch being filled, and the one before
    xors = np.zeros((n_words + 1, _BATCH), dtype=np.uint64)  # the last word stays 0 (padding)
    word = np.empty(starts.shape[0], dtype=np.int64)
    low = np.empty(starts.shape[0], dtype=np.uint64)
    high = np.empty(starts.shape[0], dtype=np.uint64)
    _substring_masks(starts, lengths, word, low, high)
    masks = (word, low, high)
    scratch = np.empty((2, _BATCH), dtype=np.int64)  # per candidate: distance, not owned
    for j in range(starts.shape[0]):
        length = lengths[j]
        if s > length:
            continue
        base = table_starts[j]
        qk = qkeys[j]
        n_keys = 1 << length
        # Enumerate the keys at exactly s bits from the query's (Gosper's hack), or, when
        # they are most of the table, walk the whole table.
        enumerate_keys = 4 * binomials[length, s] <= n_keys
        mask = (1 << s) - 1
        key_i = 0
        exhausted = False
        n_cand = 0
        n_pending = 0
        cur = 0
        while not exhausted:
            n_batch = 0
            while n_batch < _BATCH:
                if enumerate_keys:
                    if mask >= n_keys:
                        exhausted = True
                        break
                    keys[n_batch] = qk ^ mask
                    n_batch += 1
                    if s == 0:
                        mask = n_keys  # one key only
                    else:
                        c = mask & -mask
                        r = mask + c
                        mask = (((r ^ mask) >> 2) // c) | r
                else:
                    if key_i >= n_keys:
                        exhausted = True
                        break
                    if _popcount(np.uint64(key_i ^ qk)) == s:
                        keys[n_batch] = key_i
                        n_batch += 1
                    key_i += 1
            if state[2] > state[4] and _stop_here(db, query, index_arrays, binomials, limit, state, budget):
                return  # batches left unchecked: the query is given up (scanned instead)
            for t in range(n_batch):
                lo[t] = np.int64(offsets[base + keys[t]])
                hi[t] = np.int64(offsets[base + keys[t] + 1])
            for t in range(n_batch):
                if hi[t] > lo[t]:
                    _prefetch(rows, j, lo[t] * width)
            for t in range(n_batch):
                state[2] += 1 + hi[t] - lo[t]
                for p in range(lo[t], hi[t]):
                    row = _row_at(rows, j, p, width)
                    cands[cur, n_cand] = row
                    for w in range(n_words):
                        _prefetch(db, w, row)
                    n_cand += 1
                    if n_cand == _BATCH:
                        if n_pending:
                            _visit(db, query, cands[1 - cur], n_pending, xors, masks, scratch, j, s, mode,
                                   exclude, limit, state, buf, pos)
                        n_pending = n_cand
                        cur = 1 - cur
                        n_cand = 0
        if n_pending:
            _visit(db, query, cands[1 - cur], n_pending, xors, masks, scratch, j, s, mode, exclude, limit, state,
                   buf, pos)
        _visit(db, query, cands[cur], n_cand, xors, masks, scratch, j, s, mode, exclude, limit, state, buf, pos)
        if mode == 0:
            # Tables 0..j probed at radius s (and all at radius < s): an unseen code differs
            # by >= s + 1 bits on those substrings and >= s on the others, so every code
            # within m s + j has been seen. Stop once the k-th distance is within that.
            _truncate(buf, state, limit)
            if state[0] == limit and (state[1] >> 32) <= starts.shape[0] * s + j:
                state[3] = 1
                return


@njit(nogil=True)
def _stop_here(db, query, index_arrays, binomials, k, state, budget):
    """Whether a k-NN query whose work has passed its checkpoint ``state[4]`` should stop.

    Past the budget it stops. At the first checkpoint (a ``_CHECK_SHARE``-th of the budget)
    it stops at once if proving its k-th distance would cost more than the budget, that
    distance estimated from a sample of the codes: on codes where MIH loses (uniform ones)
    a query would otherwise spend its whole budget before being scanned, about a scan's
    time for nothing. Where MIH wins, most queries end before the checkpoint, and most
    others already hold k rows whose k-th distance is cheap enough to prove (an upper bound
    of the one sought): they go on without the sample. The checkpoint then moves to the
    budget."""
    state[4] = budget
    lengths, n_rows = index_arrays[1], db.shape[1]
    if state[2] <= budget:
        if state[1] != _NO_KEY and _proof_work(lengths, binomials, n_rows, state[1] >> 32) <= budget:
            return False
        if _proof_work(lengths, binomials, n_rows, _estimate_kth(db, query, k)) <= budget:
            return False
    state[3] = -1  # given up
    return True


@njit(nogil=True)
def _proof_work(lengths, binomials, n_rows, kth):
    """The work (bucket probes + candidates, in expectation over codes spread evenly over
    each table's buckets) of proving a k-th distance ``kth``: the rounds up to ``kth // m``
    in tables 0 to ``kth % m``, the rounds before it in the others."""
    m = lengths.shape[0]
    total = 0.0
    for j in range(m):
        length = lengths[j]
        rounds = min(kth // m + (1 if j <= kth % m else 0), length + 1)
        keys = 0
        for s in range(rounds):
            keys += binomials[length, s]
        total += min(keys, rounds << length) + keys * (n_rows / (1 << length))
    return total


@njit(nogil=True, inline="always")
def _visit(db, query, cand, n_cand, xors, masks, scratch, table, s, mode, exclude, limit, state, buf, pos):
    """Check a batch of candidates reached by table ``table`` at substring radius ``s``.

    A candidate is counted here only if this probe is the first to reach it: the smallest
    s, then the smallest table, i.e. no other substring j is closer than s (j after
    ``table``) or as close (j before). Distances and that test run over the whole batch in
    loops without branches, which the compiler vectorises; only the few candidates that
    pass take a branch."""
    word, low, high = masks
    n_words = db.shape[0]
    for w in range(n_words):
        q = query[w]
        for c in range(n_cand):
            xors[w, c] = db[w, cand[c]] ^ q
    dist, foreign = scratch[0], scratch[1]
    for c in range(n_cand):
        dist[c] = _popcount(xors[0, c])
        foreign[c] = 0
    for w in range(1, n_words):
        for c in range(n_cand):
            dist[c] += _popcount(xors[w, c])
    for j in range(word.shape[0]):
        if j == table:
            continue
        # Counted at an earlier probe when d_j < s, or d_j == s on an earlier table.
        bound = s + 1 if j < table else s
        a, b = xors[word[j]], xors[word[j] + 1]
        lo, hi = low[j], high[j]
        for c in range(n_cand):
            foreign[c] |= (_popcount(a[c] & lo) + _popcount(b[c] & hi)) < bound
    for c in range(n_cand):
        row = cand[c]
        if foreign[c] or row == exclude:
            continue
        d = dist[c]
        if mode == 0:
            item = (d << 32) | row
            if item < state[1]:
                buf[state[0]] = item
                state[0] += 1
                if state[0] == buf.shape[0]:
                    _truncate(buf, state, limit)
        elif d <= limit:
            if mode == 2:  # row first, so that sorting the items puts them in index order
                buf[pos + state[0]] = (row << 16) | d
            state[0] += 1


@njit(nogil=True)
def _truncate(buf, state, k):
    """Keep the k smallest (distance, row) items of the buffer, sorted; update the k-th key."""
    kept = np.sort(buf[: state[0]])[:k]
    buf[: kept.shape[0]] = kept
    state[0] = kept.shape[0]
    if state[0] == k:
        state[1] = kept[k - 1]


@njit(nogil=True, inline="always")
def _query_keys(query, starts, lengths, out):
    x = np.zeros(query.shape[0] + 1, dtype=np.uint64)
    x[:-1] = query
    for j in range(starts.shape[0]):
        out[j] = np.int64(_substring(x, starts[j], lengths[j]))


@njit(parallel=True, nogil=True)
def _knn(db, queries, k, index_arrays, binomials, exclude, check, budget, out_dist, out_idx, work):
    starts, lengths = index_arrays[0], index_arrays[1]
    m = starts.shape[0]
    max_length = lengths.max()
    for q in prange(queries.shape[0]):
        query = queries[q]
        qkeys = np.empty(m, dtype=np.int64)
        _query_keys(query, starts, lengths, qkeys)
        buf = np.empty(4 * k + 64, dtype=np.int64)
        state = np.array([0, _NO_KEY, 0, 0, check], dtype=np.int64)
        for s in range(max_length + 1):
            _probe_round(db, query, qkeys, index_arrays, binomials, s, 0, exclude[q], k, state, buf, 0, budget)
            if state[3] != 0 or state[2] > budget:
                break
        work[q] = state[2]
        if state[3] == 1:
            for i in range(k):
                out_dist[q, i] = buf[i] >> 32
                out_idx[q, i] = buf[i] & 0xFFFFFFFF
        else:
            work[q] = -1  # over budget: the caller scans instead


@functools.lru_cache(maxsize=None)
def _binomials(n):
    """C(a, b) for a, b <= n (read-only; kept: building it took ~30 us, half a one-query search)."""
    table = np.zeros((n + 1, n + 1), dtype=np.int64)
    for a in range(n + 1):
        for b in range(a + 1):
            table[a, b] = math.comb(a, b)
    table.flags.writeable = False
    return table


def _arrays(index):
    """What the kernels take of ``index``: its arrays, the row numbers as bytes, and their width."""
    arrays = tuple(getattr(index, name) for name in MultiIndex.arrays)
    return arrays[:-1] + (index.rows.view(np.uint8), np.int64(index.row_bytes))


def is_compiled():
    """Whether the k-NN kernel has been compiled (or loaded from the cache) in this process."""
    return bool(_knn.overloads)


def mih_knn(db_words, index, query_words, k, exclude=None, budget=None, n_threads=None):
    """Exact k nearest rows (ties by lower index) through the multi-index.

    Parameters
    ----------
    db_words : ndarray of shape (n_words, n_rows), uint64
        Word-major database (``pack_words``); rows must be < 2**32.
    index : MultiIndex
        Tables built over ``db_words``.
    query_words : ndarray of shape (n_queries, n_words), uint64
    k : int
    exclude : ndarray of shape (n_queries,), int64, default=None
        Row to leave out of each query's results (-1 for none).
    budget : int, default=None
        Work (bucket probes + candidates) after which a query gives up; its ``work`` is then
        -1 and its rows of ``dist``/``idx`` are undefined. A query that does a
        ``_CHECK_SHARE``-th of it gives up there if proving its k-th distance, estimated from
        a sample of the codes, would cost more than the budget. None: no limit.
    n_threads : int, default=None

    Returns
    -------
    dist, idx : ndarrays of shape (n_queries, k), int64
    work : ndarray of shape (n_queries,), int64
        Probes + candidates each query needed, or -1 where it gave up.
    """
    n_queries = query_words.shape[0]
    if exclude is None:
        exclude = np.full(n_queries, -1, dtype=np.int64)
    out_dist = np.empty((n_queries, k), dtype=np.int64)
    out_idx = np.empty((n_queries, k), dtype=np.int64)
    work = np.zeros(n_queries, dtype=np.int64)
    budget = _NO_KEY if budget is None else int(budget)
    check = budget if budget == _NO_KEY else budget // _CHECK_SHARE
    run_on_threads(n_threads, _knn, db_words, np.ascontiguousarray(query_words), k, _arrays(index),
                   _binomials(int(index.lengths.max())), exclude, check, budget, out_dist, out_idx, work)
    return out_dist, out_idx, work


@njit(parallel=True, nogil=True)
def _radius(db, queries, radius, index_arrays, binomials, exclude, offsets, buf, fill):
    starts, lengths = index_arrays[0], index_arrays[1]
    m = starts.shape[0]
    rounds = min(radius // m, lengths.max())
    for q in prange(queries.shape[0]):
        query = queries[q]
        qkeys = np.empty(m, dtype=np.int64)
        _query_keys(query, starts, lengths, qkeys)
        state = np.array([0, 0, 0, 0, _NO_KEY], dtype=np.int64)
        for s in range(rounds + 1):
            _probe_round(db, query, qkeys, index_arrays, binomials, s, 2 if fill else 1, exclude[q], radius,
                         state, buf, offsets[q], _NO_KEY)
        if fill:
            # Probes reach rows in no particular order: index order, as the scan returns them.
            buf[offsets[q]:offsets[q + 1]].sort()
        else:
            offsets[q + 1] = state[0]


def mih_radius(db_words, index, query_words, radius, n_bits, exclude=None, sort_results=False, n_threads=None):
    """Every row within Hamming ``radius`` (inclusive), in the layout of
    :func:`sortedhash.neighbors._kernels.radius_search`: (offsets, dist, idx)."""
    n_queries = query_words.shape[0]
    if exclude is None:
        exclude = np.full(n_queries, -1, dtype=np.int64)
    query_words = np.ascontiguousarray(query_words)
    radius = min(int(radius), n_bits)
    arrays, binomials = _arrays(index), _binomials(int(index.lengths.max()))
    offsets = np.zeros(n_queries + 1, dtype=np.int64)
    empty = np.empty(0, dtype=np.int64)
    run_on_threads(n_threads, _radius, db_words, query_words, radius, arrays, binomials, exclude, offsets, empty,
                   False)
    np.cumsum(offsets, out=offsets)
    items = np.empty(offsets[-1], dtype=np.int64)
    run_on_threads(n_threads, _radius, db_words, query_words, radius, arrays, binomials, exclude, offsets, items,
                   True)
    dist, idx = items & 0xFFFF, items >> 16
    if sort_results:
        run_on_threads(n_threads, _sort_by_distance, offsets, idx, dist, radius)
    return offsets, dist, idx
