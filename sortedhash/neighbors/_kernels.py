"""Compiled exact Hamming k-NN over bit-packed codes (numba).

Layout: the database is stored as uint64 words, word-major (shape ``(n_words, n_rows)``),
so the XOR + popcount of one query against a block of rows runs over contiguous memory.

Selection: Hamming distances are integers in ``0..n_bits``, so instead of a heap each query
keeps a histogram of the distances it has accepted and the exact current k-th distance
``t``. Rows are visited in index order, so a row at distance ``t`` can never displace one
already held (ties go to the lower index): a row is accepted only when its distance is
``< t`` (or while fewer than ``k`` are held). Accepted rows go to a buffer that is
compacted when full. The final order is a counting sort by distance of a buffer already in
index order, which is exactly a stable sort of all distances. For many neighbours (k from
64) ``_knn_lanes`` starts each threshold from a sample of the rows rather than from none, so
fewer rows enter a top k only to leave it; a query whose sampled threshold keeps fewer than
k rows is scanned again without one.

Two k-NN kernels share that selection. ``_knn`` takes one query at a time over a block of
rows (the loops numba vectorises run over rows). ``_knn_lanes`` holds sixteen queries in the
lanes of one vector and broadcasts each row to them (``_lanes``): a row is read once for
sixteen queries and the distances stay in registers, which is about twice as fast a query
with sixteen queries, for codes of up to eight words with AVX-512 (one with AVX2). A group
costs a scan however few queries it holds, so ``knn_search`` runs a group from
``_lanes.MIN_QUERIES`` queries on and, over codes the cache holds, leaves the few past the
last full group to ``_knn``.

Radius search runs the same distance pass twice: once to count each query's rows within the
radius (which sizes the output), once to write them, in index order, at their offsets.
"""

import math

import numba
import numpy as np
from numba import prange, types
from numba.extending import intrinsic

from ._jit import njit
from ._lanes import LANES, MAX_WORDS, MIN_QUERIES, SCAN_ROWS, WIDEST, rows_below, scan_hits
from ._threads import numba_threads, run_on_threads

__all__ = ["pack_words", "knn_search", "radius_search", "estimate_kth", "estimate_sample", "scans_in_groups"]

_DB_BLOCK = 2048  # rows per block: the block of words stays in L1/L2 across a query chunk
_NARROW_BLOCK = 512  # rows per block for codes of up to two words (see _block_rows)
_QUERY_CHUNK = 16  # queries per task: each reuses the cached block
_ESTIMATE_BLOCKS, _ESTIMATE_BLOCK_ROWS = 16, 1024  # estimate_kth's sample: blocks spread over the codes


@intrinsic
def _popcount(typingctx, x):
    """LLVM ctpop of a uint64, returned as int64 (mixing unsigned and signed types in
    comparisons makes numba fall back to float64, several times slower)."""
    sig = types.int64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return sig, codegen


@intrinsic
def _trailing_zeros(typingctx, x):
    """LLVM cttz of a non-zero uint64, as int64: the position of its lowest set bit."""
    sig = types.int64(types.uint64)

    def codegen(context, builder, signature, args):
        from llvmlite import ir

        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

    return sig, codegen


def _prefetch_intrinsic(locality):
    """An intrinsic ``(array, i, j)`` asking the CPU to start loading ``array[i, j]`` into its
    caches (LLVM prefetch for a read, ``locality`` 3: every level, 1: L2 and below), going on
    without waiting: a load issued long before it is needed overlaps its cache and TLB
    misses with other work."""

    @intrinsic
    def prefetch(typingctx, array, i, j):
        sig = types.void(array, types.int64, types.int64)

        def codegen(context, builder, signature, args):
            from llvmlite import ir
            from numba.core import cgutils

            data = context.make_array(signature.args[0])(context, builder, args[0])
            strides = cgutils.unpack_tuple(builder, data.strides, 2)
            offset = builder.add(builder.mul(args[1], strides[0]), builder.mul(args[2], strides[1]))
            byte = ir.IntType(8).as_pointer()
            pointer = builder.gep(builder.bitcast(data.data, byte), [offset])
            i32 = ir.IntType(32)
            prefetch = builder.module.declare_intrinsic(
                "llvm.prefetch", [byte], fnty=ir.FunctionType(ir.VoidType(), [byte, i32, i32, i32]))
            builder.call(prefetch, [pointer, ir.Constant(i32, 0), ir.Constant(i32, locality), ir.Constant(i32, 1)])
            return context.get_dummy_value()

        return sig, codegen

    return prefetch


_prefetch = _prefetch_intrinsic(3)  # what is read next (MIH: buckets, candidates), into every level
_prefetch_l2 = _prefetch_intrinsic(1)  # rows read a few rows later (re-ranking), into L2


@intrinsic
def _below_mask(typingctx, dist, start, t):
    """Bit ``b`` set where ``dist[start + b] < t``, for b in 0..63, as one uint64: a vector
    compare LLVM lowers to mask registers (AVX-512) or compare + movemask (AVX2). Reads 64
    entries from ``start``: the caller keeps them inside the buffer and masks off the rows
    past the block's end."""
    sig = types.uint64(dist, types.int64, types.int32)

    def codegen(context, builder, signature, args):
        from llvmlite import ir

        array = context.make_array(signature.args[0])(context, builder, args[0])
        i32 = ir.IntType(32)
        vector = ir.VectorType(i32, 64)
        pointer = builder.bitcast(builder.gep(array.data, [args[1]]), vector.as_pointer())
        values = builder.load(pointer, align=4)
        splat = builder.insert_element(ir.Constant(vector, ir.Undefined), args[2], ir.Constant(i32, 0))
        splat = builder.shuffle_vector(splat, splat, ir.Constant(vector, [0] * 64))
        return builder.bitcast(builder.icmp_signed("<", values, splat), ir.IntType(64))

    return sig, codegen


def pack_words(codes):
    """uint8 codes (n, n_bytes) -> word-major uint64 array (n_words, n)."""
    n, n_bytes = codes.shape
    n_words = (n_bytes + 7) // 8
    padded = np.zeros((n, n_words * 8), dtype=np.uint8)
    padded[:, :n_bytes] = codes
    return np.ascontiguousarray(padded.view("<u8").T)


@njit(nogil=True, inline="always")
def _block_rows(n_words):
    """Rows per database block (at most ``_DB_BLOCK``, the size of the buffers). Up to two
    words (128 bits) a row the distances are cheap and the per-block selection dominates:
    smaller blocks tighten the threshold after fewer rows and skip at a finer grain. Wider
    codes favour the larger block (the kernel A/B tool in ``research/`` compares them)."""
    return _NARROW_BLOCK if n_words <= 2 else _DB_BLOCK


@njit(nogil=True, inline="always")
def _block_distances(db, query, r0, r1, dist):
    """dist[j] = Hamming(query, row r0 + j) for the block [r0, r1): branch-free loops the
    compiler vectorises, up to four words fused per pass so each row is read once."""
    n_words = db.shape[0]
    nr = r1 - r0
    w = 0
    first = True
    while w < n_words:
        if n_words - w >= 4:
            a, b, c, d = db[w, r0:r1], db[w + 1, r0:r1], db[w + 2, r0:r1], db[w + 3, r0:r1]
            qa, qb, qc, qd = query[w], query[w + 1], query[w + 2], query[w + 3]
            if first:
                for j in range(nr):
                    dist[j] = (_popcount(qa ^ a[j]) + _popcount(qb ^ b[j])
                               + _popcount(qc ^ c[j]) + _popcount(qd ^ d[j]))
            else:
                for j in range(nr):
                    dist[j] += (_popcount(qa ^ a[j]) + _popcount(qb ^ b[j])
                                + _popcount(qc ^ c[j]) + _popcount(qd ^ d[j]))
            w += 4
        elif n_words - w >= 2:
            a, b = db[w, r0:r1], db[w + 1, r0:r1]
            qa, qb = query[w], query[w + 1]
            if first:
                for j in range(nr):
                    dist[j] = _popcount(qa ^ a[j]) + _popcount(qb ^ b[j])
            else:
                for j in range(nr):
                    dist[j] += _popcount(qa ^ a[j]) + _popcount(qb ^ b[j])
            w += 2
        else:
            # 1-D slices: index arithmetic of known sign keeps loads contiguous.
            a = db[w, r0:r1]
            qa = query[w]
            if first:
                for j in range(nr):
                    dist[j] = _popcount(qa ^ a[j])
            else:
                for j in range(nr):
                    dist[j] += _popcount(qa ^ a[j])
            w += 1
        first = False


@njit(nogil=True, inline="always")
def _block_distances_min(db, query, r0, r1, dist):
    """:func:`_block_distances`, returning the block's smallest distance. For one-word codes
    the minimum is taken in the same loop: a second pass over the distances would cost
    about as much as computing them."""
    if db.shape[0] != 1:
        _block_distances(db, query, r0, r1, dist)
        lowest = dist[0]
        for j in range(r1 - r0):
            lowest = min(lowest, dist[j])
        return lowest
    a = db[0, r0:r1]
    qa = query[0]
    lowest = np.int32(64)
    for j in range(r1 - r0):
        d = np.int32(_popcount(qa ^ a[j]))
        dist[j] = d
        lowest = min(lowest, d)
    return lowest


@njit(nogil=True)
def _compact(buf_d, buf_i, size, hist, k, t):
    """Keep the entries that can still be in the top k: d < t, and the first ones at d == t."""
    keep_at_t = k
    for d in range(t):
        keep_at_t -= hist[d]
    out = 0
    for j in range(size):
        d = buf_d[j]
        if d < t or (d == t and keep_at_t > 0):
            if d == t:
                keep_at_t -= 1
            buf_d[out] = d
            buf_i[out] = buf_i[j]
            out += 1
    for d in range(hist.shape[0]):
        hist[d] = 0
    for j in range(out):
        hist[buf_d[j]] += 1
    return out


@njit(nogil=True)
def _kth(hist, k):
    """Smallest t with at least k accepted distances <= t (len(hist) when fewer than k)."""
    total = 0
    for d in range(hist.shape[0]):
        total += hist[d]
        if total >= k:
            return d
    return hist.shape[0]


@njit(nogil=True)
def _write_top_k(buf_d, buf_i, size, hist, k, out_idx, out_dist):
    """The k smallest of a query's buffer (in index order), by distance then index: a
    counting sort over the distances up to the k-th (one pass; the buffer is in index
    order, so it is stable and the first rows at the k-th distance are the ones kept)."""
    t = min(_kth(hist, k), hist.shape[0] - 1)
    start = np.empty(t + 1, dtype=np.int64)  # output position of the next row at each distance
    total = 0
    for d in range(t + 1):
        start[d] = total
        total += hist[d]
    for j in range(size):
        d = buf_d[j]
        if d <= t:
            pos = start[d]
            start[d] = pos + 1
            if pos < k:
                out_idx[pos] = buf_i[j]
                out_dist[pos] = d


@njit(parallel=True, nogil=True)
def _knn(db, queries, k, n_bits, exclude, out_idx, out_dist):
    n_words, n_rows = db.shape
    n_queries = queries.shape[0]
    n_chunks = (n_queries + _QUERY_CHUNK - 1) // _QUERY_CHUNK
    cap = 4 * k + _DB_BLOCK
    block = _block_rows(n_words)
    for chunk in prange(n_chunks):
        q0 = chunk * _QUERY_CHUNK
        q1 = min(q0 + _QUERY_CHUNK, n_queries)
        nq = q1 - q0
        buf_d = np.empty((nq, cap), dtype=np.int64)
        buf_i = np.empty((nq, cap), dtype=np.int64)
        size = np.zeros(nq, dtype=np.int64)
        hist = np.zeros((nq, n_bits + 1), dtype=np.int64)
        thresh = np.full(nq, n_bits + 1, dtype=np.int64)  # accept d < thresh
        # int32 distances: AVX2 has a packed int32 min, not an int64 one.
        dist = np.empty(_DB_BLOCK, dtype=np.int32)
        for r0 in range(0, n_rows, block):
            r1 = min(r0 + block, n_rows)
            nr = r1 - r0
            for qi in range(nq):
                q = q0 + qi
                # The block minimum lets most blocks skip the scan once t has tightened.
                lowest = _block_distances_min(db, queries[q], r0, r1, dist)
                t = thresh[qi]
                if size[qi] == 0 and t > n_bits:
                    # First block: take t from its own histogram rather than accepting
                    # every row (rows at exactly t beyond the quota are trimmed below).
                    seed = np.zeros(n_bits + 1, dtype=np.int64)
                    for j in range(nr):
                        seed[dist[j]] += 1
                    if r0 <= exclude[q] < r1:
                        seed[dist[exclude[q] - r0]] -= 1
                    kth = _kth(seed, k)
                    if kth <= n_bits:
                        t = kth + 1
                if lowest >= t:
                    continue
                s = size[qi]
                skip = exclude[q]
                # The rows under t are few: a vectorised pass marks them in one bit mask
                # per 64 rows, and only the marked rows are visited (a branch per row
                # would cost more than computing the distances).
                t32 = np.int32(t)
                for g0 in range(0, nr, 64):
                    mask = _below_mask(dist, g0, t32)
                    if nr - g0 < 64:  # the buffer past the block holds older rows
                        mask &= (np.uint64(1) << np.uint64(nr - g0)) - np.uint64(1)
                    while mask != 0:
                        j = g0 + _trailing_zeros(mask)
                        mask &= mask - np.uint64(1)
                        d = np.int64(dist[j])
                        if d < t and r0 + j != skip:
                            buf_d[qi, s] = d
                            buf_i[qi, s] = r0 + j
                            hist[qi, d] += 1
                            s += 1
                            if s >= cap - 1:
                                t = _kth(hist[qi], k)
                                s = _compact(buf_d[qi], buf_i[qi], s, hist[qi], k, t)
                if s >= k:
                    t = _kth(hist[qi], k)
                    if s > 2 * k:
                        s = _compact(buf_d[qi], buf_i[qi], s, hist[qi], k, t)
                size[qi] = s
                thresh[qi] = t
        for qi in range(nq):
            _write_top_k(buf_d[qi], buf_i[qi], size[qi], hist[qi], k, out_idx[q0 + qi], out_dist[q0 + qi])


_LANE_BLOCK_WORDS = 8192  # words of a block of rows (64 KiB): in cache while a part's groups scan it
_HIT_STEPS = 8  # steps with a row below a threshold noted before the thresholds are updated
_LANE_GROUPS = 32  # groups of sixteen queries a part holds, at most
_CACHED_DB_BYTES = 16 << 20  # databases up to this size are taken to stay in the last-level cache


@njit(nogil=True, inline="always")
def _count(j, d, row, k, thresh, below, hist, skip):
    """Lane j's query meets ``row`` at distance ``d``: count it if it can be in the top k
    (returns whether it is). ``below[j]`` counts the rows under ``thresh[j]``; once k are,
    the threshold drops to the k-th distance (a later row at that distance loses to the
    earlier ones). The sample pass needs only this (no row kept; measured at 1M x 64 / 256
    bits, k = 100: 3-4 % faster than keeping its rows in one run, even in another)."""
    t = thresh[j]
    if d >= t or row == skip[j]:
        return False
    hist[j, d] += 1
    a = below[j] + 1
    while a >= k:
        t -= 1
        a -= hist[j, t]
    below[j] = a
    thresh[j] = t
    return True


@njit(nogil=True, inline="always")
def _offer(j, d, row, k, thresh, below, size, hist, buf_d, buf_i, skip):
    """:func:`_count`, and keep the row in lane j's buffer if it counts."""
    if not _count(j, d, row, k, thresh, below, hist, skip):
        return
    s = size[j]
    buf_d[j, s] = d
    buf_i[j, s] = row
    s += 1
    if s == buf_d.shape[1]:
        s = _compact(buf_d[j], buf_i[j], s, hist[j], k, thresh[j])  # the threshold is the k-th distance now
    size[j] = s


@njit(nogil=True, inline="always")
def _lane_capacity(k):
    """Rows a lane's buffer holds before it is compacted to k."""
    return 4 * k + 64


def _lane_part_size(n_queries, k, n_threads, db_bytes):
    """Groups of sixteen queries a part of :func:`_knn_lanes` holds (a part runs on one
    thread). A database larger than the cache is read from memory once a part, so a part
    takes up to ``_LANE_GROUPS`` groups (fewer when their buffers would pass ~64 MiB) and
    there are at least as many parts as threads. A database that fits in the cache gains
    nothing from that, and switching among many groups' buffers costs: two groups a part
    (measured: 1M x 64 bits, k = 100, one thread, 11,112 q/s with two, 9,744 with 32; 10M,
    1,180 with 32, 728 with two)."""
    n_groups = -(-n_queries // LANES)
    most = 2 if db_bytes <= _CACHED_DB_BYTES else _LANE_GROUPS
    most = min(most, max(1, (1 << 26) // (LANES * _lane_capacity(k) * 16)))
    return max(1, min(most, -(-n_groups // max(1, n_threads))))


def _sample_rank(k, n_rows):
    """Rank, within the sampled rows of :func:`_knn_lanes`, whose distance starts each
    query's threshold; 0: no sample.

    A scan visits about ``k ln(N / k)`` rows that enter a top k as it goes, most of them
    early, while the threshold is still loose; starting it near the final k-th distance
    leaves about the rows under it. The sample (:func:`_sample_layout`) holds about
    ``k S / N`` of the final top k, and twice that plus two makes a threshold too tight to
    keep k rows rare (``_knn_lanes`` scans those queries again). Measured (one thread,
    ``research/NOTES.md``): 1M random codes, k = 100, 64 / 256 bits +6-10 % / +3-7 %;
    k = 1,000, 64 / 384 bits +26-33 %; 10M, k = 1,000 +18 %; but 10M, k = 100 -3-0 %,
    where the rows that enter a top k are spread thin already, and k = 32 about even.
    Hence from ``_SAMPLE_MIN_K`` neighbours, up to ``_SAMPLE_MAX_ROWS_PER_K`` rows a
    neighbour, and from ``_SAMPLE_MIN_ROWS`` rows.

    From ~16 of the top k in the sample on, four standard deviations of that (Poisson)
    count over it are the smaller margin, and as safe: 1M random codes, k = 1,000, rank 55
    instead of 64 leaves ~1,870 rows under the threshold instead of ~2,460 at 384 bits, no
    query of 1,000 short at 128 or 384 bits (~2 % short at rank 40); +2-7 % at 64-384 bits,
    and on binary quantization's codes of 1M MiniLM rows +2-4 % at k = 1,000 and +5-8 % at
    k = 1,500 (rank 76 instead of 95)."""
    if k < _SAMPLE_MIN_K or n_rows > _SAMPLE_MAX_ROWS_PER_K * k or n_rows < _SAMPLE_MIN_ROWS:
        return 0
    _, chunk = _sample_layout(n_rows - n_rows % SCAN_ROWS)
    expected = k * _SAMPLE_CHUNKS * chunk / n_rows  # rows of the final top k in the sample
    rank = math.ceil(min(2 * expected, expected + 4 * math.sqrt(expected))) + 2
    return rank if 2 * rank <= k else 0


_SAMPLE_CHUNKS = 64  # runs of rows the sample takes, evenly spread
_SAMPLE_STRIDE = 32  # the sample is about one row in 32
_SAMPLE_MIN_K = 64
_SAMPLE_MAX_ROWS_PER_K = 2**15
_SAMPLE_MIN_ROWS = 2**17


@njit(nogil=True)
def _sample_layout(scanned):
    """(spacing, rows) of the sample's ``_SAMPLE_CHUNKS`` runs over the first ``scanned``
    rows: run c is ``[c * spacing, c * spacing + rows)``. Runs spread over the whole
    database sample rows stored in any order alike (the first rows alone can differ from
    the rest: on a database of real rows followed by noisy copies, thresholds from its
    first blocks were too tight for 78-89 % of queries), and runs of whole steps keep the
    scan's per-call cost small."""
    spacing = scanned // _SAMPLE_CHUNKS // SCAN_ROWS * SCAN_ROWS
    return spacing, max(SCAN_ROWS, spacing // _SAMPLE_STRIDE // SCAN_ROWS * SCAN_ROWS)


@njit(nogil=True, inline="always")
def _lane_block_rows(n_words):
    return max(SCAN_ROWS, _LANE_BLOCK_WORDS // n_words // SCAN_ROWS * SCAN_ROWS)


@njit(parallel=True, nogil=True)
def _knn_lanes(db, queries, k, n_bits, exclude, out_idx, out_dist, per_part, sample_rank):
    """:func:`_knn` with sixteen queries a vector: a row is read once for all sixteen, and a
    step of rows costs one compare of each lane's minimum with its threshold (``_lanes``).
    The rare steps with a row under a threshold are rescanned for the exact rows. Each
    thread takes up to ``_LANE_GROUPS`` groups of sixteen queries over a block of rows that
    stays in cache before it moves to the next, so the database is read from memory once a
    part, not once a group.

    With ``sample_rank`` > 0, each query's threshold starts at the ``sample_rank``-th
    smallest distance among about one row in ``_SAMPLE_STRIDE`` (see
    :func:`_sample_rank`). A query that then finds fewer than k rows within it is scanned
    again from no threshold, so the result never depends on the sample."""
    n_words, n_rows = db.shape
    n_queries = queries.shape[0]
    n_groups = (n_queries + LANES - 1) // LANES
    scanned = n_rows - n_rows % SCAN_ROWS
    block = _lane_block_rows(n_words)
    cap = _lane_capacity(k)
    for part in prange((n_groups + per_part - 1) // per_part):
        g0 = part * per_part
        ng = min(per_part, n_groups - g0)
        lanes = np.zeros((ng, n_words, LANES), dtype=np.uint64)
        thresh = np.zeros((ng, LANES), dtype=np.int64)  # a lane without a query is never below
        skip = np.full((ng, LANES), -1, dtype=np.int64)
        for g in range(ng):
            for j in range(min(LANES, n_queries - (g0 + g) * LANES)):
                q = (g0 + g) * LANES + j
                for w in range(n_words):
                    lanes[g, w, j] = queries[q, w]
                thresh[g, j] = n_bits + 1
                skip[g, j] = exclude[q]
        buf_d = np.empty((ng, LANES, cap), dtype=np.int64)
        buf_i = np.empty((ng, LANES, cap), dtype=np.int64)
        size = np.zeros((ng, LANES), dtype=np.int64)
        below = np.zeros((ng, LANES), dtype=np.int64)
        hist = np.zeros((ng, LANES, n_bits + 1), dtype=np.int64)
        hit_rows = np.empty(_HIT_STEPS, dtype=np.int64)
        hit_lanes = np.empty(_HIT_STEPS, dtype=np.uint64)
        if sample_rank > 0:
            spacing, run = _sample_layout(scanned)
            for c in range(_SAMPLE_CHUNKS):
                for g in range(ng):
                    _scan_lane_group(db, c * spacing, c * spacing + run, sample_rank, lanes[g], thresh[g], below[g],
                                     size[g], hist[g], buf_d[g], buf_i[g], skip[g], hit_rows, hit_lanes, True)
            for g in range(ng):
                _start_from_sample(min(LANES, n_queries - (g0 + g) * LANES), n_bits, thresh[g])
            below[:] = 0
            hist[:] = 0
        for r0 in range(0, scanned, block):
            r1 = min(r0 + block, scanned)
            for g in range(ng):
                _scan_lane_group(db, r0, r1, k, lanes[g], thresh[g], below[g], size[g], hist[g], buf_d[g], buf_i[g],
                                 skip[g], hit_rows, hit_lanes)
        for g in range(ng):
            nq = min(LANES, n_queries - (g0 + g) * LANES)
            _scan_lane_tail(db, scanned, k, nq, lanes[g], thresh[g], below[g], size[g], hist[g], buf_d[g],
                            buf_i[g], skip[g])
            if sample_rank > 0 and _restart_short_lanes(k, n_bits, nq, thresh[g], below[g], size[g], hist[g]):
                for r0 in range(0, scanned, block):
                    _scan_lane_group(db, r0, min(r0 + block, scanned), k, lanes[g], thresh[g], below[g], size[g],
                                     hist[g], buf_d[g], buf_i[g], skip[g], hit_rows, hit_lanes)
                _scan_lane_tail(db, scanned, k, nq, lanes[g], thresh[g], below[g], size[g], hist[g], buf_d[g],
                                buf_i[g], skip[g])
            for j in range(nq):
                q = (g0 + g) * LANES + j
                _write_top_k(buf_d[g, j], buf_i[g, j], size[g, j], hist[g, j], k, out_idx[q], out_dist[q])


@njit(nogil=True, inline="always")
def _start_from_sample(nq, n_bits, thresh):
    """After the sample pass, thresh holds each lane's rank-th sampled distance (or none):
    keep the rows up to it."""
    for j in range(nq):
        thresh[j] = min(thresh[j] + 1, n_bits + 1)


@njit(nogil=True, inline="always")
def _restart_short_lanes(k, n_bits, nq, thresh, below, size, hist):
    """Lanes that kept fewer than k rows under their sampled threshold start again from
    none; the others sit the rescan out (no distance is below 0). Whether any must."""
    short = False
    for j in range(nq):
        if size[j] < k:
            short = True
            thresh[j] = n_bits + 1
            size[j] = 0
            below[j] = 0
            hist[j] = 0
        else:
            thresh[j] = 0
    return short


@njit(nogil=True, inline="always")
def _scan_lane_tail(db, scanned, k, nq, lanes, thresh, below, size, hist, buf_d, buf_i, skip):
    """The last rows, fewer than a step, one by one."""
    n_words = db.shape[0]
    for row in range(scanned, db.shape[1]):
        for j in range(nq):
            d = 0
            for w in range(n_words):
                d += _popcount(lanes[w, j] ^ db[w, row])
            _offer(j, d, row, k, thresh, below, size, hist, buf_d, buf_i, skip)


@njit(nogil=True, inline="always")
def _take(db, lanes, j, row, k, thresh, below, size, hist, buf_d, buf_i, skip, count_only):
    """Offer ``row`` to lane j's query (or only count it, :func:`_count`)."""
    d = 0
    for w in range(db.shape[0]):
        d += _popcount(lanes[w, j] ^ db[w, row])
    if count_only:
        _count(j, d, row, k, thresh, below, hist, skip)
    else:
        _offer(j, d, row, k, thresh, below, size, hist, buf_d, buf_i, skip)


@njit(nogil=True, inline="always")
def _scan_lane_group(db, r0, r1, k, lanes, thresh, below, size, hist, buf_d, buf_i, skip, hit_rows, hit_lanes,
                     count_only=False):
    """One group of sixteen queries over rows ``[r0, r1)`` (whole steps); with
    ``count_only``, the rows are counted, not kept (:func:`_count`).

    Each call of the scan runs until ``len(hit_rows)`` steps hit; then each noted lane's
    rows are found and offered, and the scan resumes after the last step noted. (A second
    way, computing every step's row x lane masks in the loop where most steps hit, gained
    nothing once the notes had no branch: 1M random codes, one thread, 64 bits k = 1,000 /
    3,000 +13-18 % without it, 128-512 bits k = 100-1,000 even to +13 %, 384 bits k = 3,000
    -4 % to even; binary quantization's codes of 1M MiniLM rows k = 300-3,000 -2 % to +4 %;
    ``research/NOTES.md``.)"""
    n_words = db.shape[0]
    r = r0
    while r < r1:
        n_hits = scan_hits(db, r, r1, lanes, thresh, n_words, hit_rows, hit_lanes)
        r = hit_rows[n_hits - 1] + SCAN_ROWS if n_hits == hit_rows.shape[0] else r1
        for h in range(n_hits):
            noted = hit_lanes[h]
            while noted != 0:  # lanes in order, each lane's rows in index order
                j = _trailing_zeros(noted)
                noted &= noted - np.uint64(1)
                # The lane's current threshold: rows under the call's alone would be refused.
                rows = np.uint64(rows_below(db, hit_rows[h], lanes, j, thresh[j], n_words))
                while rows != 0:
                    i = _trailing_zeros(rows)
                    rows &= rows - np.uint64(1)
                    _take(db, lanes, j, hit_rows[h] + i, k, thresh, below, size, hist, buf_d, buf_i, skip,
                          count_only)


@njit(nogil=True)
def estimate_sample(n_rows, k):
    """The sample of :func:`estimate_kth`: (blocks, rows a block, the rank that stands for
    the k-th over all ``n_rows`` codes, ceil(k n / N) for n sampled codes, at most n)."""
    blocks = min(_ESTIMATE_BLOCKS, n_rows)
    block = min(_ESTIMATE_BLOCK_ROWS, n_rows // blocks)
    return blocks, block, min(blocks * block, max(1, -(-k * (blocks * block) // n_rows)))


@njit(nogil=True)
def _estimate_kth(db, query, k):
    blocks, block, rank = estimate_sample(db.shape[1], k)
    n = blocks * block
    dist = np.empty(n, dtype=np.int32)
    lowest = np.int32(64 * db.shape[0])
    step = db.shape[1] // blocks
    for b in range(blocks):
        lowest = min(lowest, _block_distances_min(db, query, b * step, b * step + block, dist[b * block:]))
    # The rank-th smallest: count the distances at each value from the lowest up (a few
    # passes the compiler vectorises, where a histogram's scattered increments do not).
    t = np.int64(lowest)
    while True:
        count = 0
        for i in range(n):
            count += dist[i] <= t
        if count >= rank:
            return t
        t += 1


@njit(nogil=True)
def _estimate_kths(db, queries, k, out):
    for q in range(queries.shape[0]):
        out[q] = _estimate_kth(db, queries[q], k)


def estimate_kth(db_words, query_words, k):
    """Each query's k-th distance over all the codes of ``db_words``, estimated from a
    sample: blocks of consecutive codes spread evenly over them (16 of up to 1,024), where
    the k-th stands at rank ceil(k n / N) of n codes. A high estimate: that rank stands for
    ~N / n nearest where k < N / n (:func:`estimate_sample` says which rank it takes)."""
    out = np.empty(len(query_words), dtype=np.int64)
    _estimate_kths(db_words, np.ascontiguousarray(query_words), k, out)
    return out


def knn_search(db_words, query_words, k, n_bits, exclude=None, n_threads=None, lanes=None):
    """Exact k nearest rows of ``db_words`` for each query, ties by lower index.

    Parameters
    ----------
    db_words : ndarray of shape (n_words, n_rows), uint64
        Word-major database from :func:`pack_words`.
    query_words : ndarray of shape (n_queries, n_words), uint64
        Row-major queries (``pack_words(q).T``).
    k : int
        Neighbours per query (<= n_rows, minus one with ``exclude``).
    n_bits : int
        Upper bound of the distances (8 x bytes of a code).
    exclude : ndarray of shape (n_queries,), int64, default=None
        Row to leave out for each query (-1 for none), for leave-one-out queries.
    n_threads : int, default=None
        numba threads; None uses numba's current setting.
    lanes : bool, default=None
        Run sixteen queries a vector (``_knn_lanes``, codes of up to eight words) or one at a
        time (``_knn``); None chooses: sixteen a vector from :data:`~._lanes.MIN_QUERIES`
        queries on, for codes of up to :data:`~._lanes.MAX_WORDS` words, and the few queries
        past the last full group one at a time where that is quicker
        (:func:`_lane_query_count`). All give the same results.

    Returns
    -------
    dist : ndarray of shape (n_queries, k), int64
    idx : ndarray of shape (n_queries, k), int64
    """
    n_queries = query_words.shape[0]
    if exclude is None:
        exclude = np.full(n_queries, -1, dtype=np.int64)
    out_idx = np.empty((n_queries, k), dtype=np.int64)
    out_dist = np.empty((n_queries, k), dtype=np.int64)
    threads = numba_threads() if n_threads is None else n_threads
    threads = min(int(threads), numba.config.NUMBA_NUM_THREADS)
    if lanes is None:
        lanes = scans_in_groups(db_words.shape[0], n_queries)
        in_lanes = _lane_query_count(n_queries, k, threads, db_words.nbytes) if lanes else 0
    elif lanes and db_words.shape[0] > WIDEST:
        raise ValueError(f"the lane kernel takes codes of up to {WIDEST} words, not {db_words.shape[0]}")
    else:
        in_lanes = n_queries if lanes else 0
    query_words = np.ascontiguousarray(query_words)
    if in_lanes:
        head = slice(0, in_lanes)
        run_on_threads(n_threads, _knn_lanes, db_words, query_words[head], k, n_bits, exclude[head], out_idx[head],
                       out_dist[head], _lane_part_size(in_lanes, k, threads, db_words.nbytes),
                       _sample_rank(k, db_words.shape[1]))
    if in_lanes < n_queries:
        tail = slice(in_lanes, n_queries)
        run_on_threads(n_threads, _knn, db_words, query_words[tail], k, n_bits, exclude[tail], out_idx[tail],
                       out_dist[tail])
    return out_dist, out_idx


def scans_in_groups(n_words, n_queries):
    """Whether :func:`knn_search` (left to choose) scans ``n_queries`` queries of ``n_words``
    words sixteen a vector: then a group costs about :data:`~._lanes.MIN_QUERIES` scans of
    one query alone, however many of the sixteen it holds."""
    return n_words <= MAX_WORDS and n_queries >= MIN_QUERIES


def _lane_query_count(n_queries, k, n_threads, db_bytes):
    """How many of the queries (the first ones) the lane kernel takes; the rest run one at a
    time. A group of sixteen lanes costs a scan however few queries it holds, and fewer than
    :data:`~._lanes.MIN_QUERIES` queries one at a time cost less than that (17 queries over
    1M 64-bit codes, one thread, AVX-512: 0.80 ms in two groups, ~0.52 as a group and a
    query). Only where the codes stay in the cache: over codes read from memory the few
    queries would read them once more. With several threads the groups spread over them,
    and the few queries are left to the lanes when one more group would not lengthen the
    busiest thread's share by as much."""
    groups, tail = divmod(n_queries, LANES)
    if not groups or not 0 < tail < MIN_QUERIES or db_bytes > _CACHED_DB_BYTES:
        return n_queries
    if _busiest_groups(groups, k, n_threads, db_bytes) + tail / MIN_QUERIES >= _busiest_groups(
            groups + 1, k, n_threads, db_bytes):
        return n_queries
    return groups * LANES


def _busiest_groups(groups, k, n_threads, db_bytes):
    """Groups of sixteen queries the busiest thread scans when ``_knn_lanes`` takes ``groups``
    (parts of :func:`_lane_part_size` groups, spread evenly over the threads)."""
    per_part = _lane_part_size(groups * LANES, k, n_threads, db_bytes)
    parts = -(-groups // per_part)
    return min(groups, -(-parts // n_threads) * per_part)


@njit(parallel=True, nogil=True)
def _radius_count(db, queries, radius, exclude, counts):
    n_words, n_rows = db.shape
    n_queries = queries.shape[0]
    block = _block_rows(n_words)
    for chunk in prange((n_queries + _QUERY_CHUNK - 1) // _QUERY_CHUNK):
        q0 = chunk * _QUERY_CHUNK
        q1 = min(q0 + _QUERY_CHUNK, n_queries)
        dist = np.empty(_DB_BLOCK, dtype=np.int32)
        for r0 in range(0, n_rows, block):
            r1 = min(r0 + block, n_rows)
            for q in range(q0, q1):
                _block_distances(db, queries[q], r0, r1, dist)
                found = 0
                for j in range(r1 - r0):
                    found += dist[j] <= radius
                skip = exclude[q]
                if r0 <= skip < r1 and dist[skip - r0] <= radius:
                    found -= 1
                counts[q] += found


@njit(parallel=True, nogil=True)
def _radius_fill(db, queries, radius, exclude, offsets, out_idx, out_dist):
    n_words, n_rows = db.shape
    n_queries = queries.shape[0]
    block = _block_rows(n_words)
    for chunk in prange((n_queries + _QUERY_CHUNK - 1) // _QUERY_CHUNK):
        q0 = chunk * _QUERY_CHUNK
        q1 = min(q0 + _QUERY_CHUNK, n_queries)
        dist = np.empty(_DB_BLOCK, dtype=np.int32)
        pos = offsets[q0:q1].copy()
        for r0 in range(0, n_rows, block):
            r1 = min(r0 + block, n_rows)
            for q in range(q0, q1):
                _block_distances(db, queries[q], r0, r1, dist)
                p = pos[q - q0]
                skip = exclude[q]
                for j in range(r1 - r0):
                    if dist[j] <= radius and r0 + j != skip:
                        out_idx[p] = r0 + j
                        out_dist[p] = dist[j]
                        p += 1
                pos[q - q0] = p


@njit(parallel=True, nogil=True)
def _sort_by_distance(offsets, idx, dist, max_distance):
    """Stable counting sort of each query's segment by distance (segments are in index order)."""
    for q in prange(offsets.shape[0] - 1):
        a, b = offsets[q], offsets[q + 1]
        if b - a < 2:
            continue
        start = np.zeros(max_distance + 2, dtype=np.int64)
        for j in range(a, b):
            start[dist[j] + 1] += 1
        for d in range(max_distance + 1):
            start[d + 1] += start[d]
        seg_idx = idx[a:b].copy()
        seg_dist = dist[a:b].copy()
        for j in range(b - a):
            d = seg_dist[j]
            idx[a + start[d]] = seg_idx[j]
            dist[a + start[d]] = d
            start[d] += 1


def radius_search(db_words, query_words, radius, n_bits, exclude=None, sort_results=False, n_threads=None):
    """Every row of ``db_words`` within Hamming ``radius`` (inclusive) of each query.

    Parameters
    ----------
    db_words : ndarray of shape (n_words, n_rows), uint64
        Word-major database from :func:`pack_words`.
    query_words : ndarray of shape (n_queries, n_words), uint64
        Row-major queries (``pack_words(q).T``).
    radius : int
        Largest distance returned.
    n_bits : int
        Upper bound of the distances (8 x bytes of a code).
    exclude : ndarray of shape (n_queries,), int64, default=None
        Row to leave out for each query (-1 for none), for leave-one-out queries.
    sort_results : bool, default=False
        Order each query's rows by distance (ties by index) instead of by index.
    n_threads : int, default=None
        numba threads; None uses numba's current setting.

    Returns
    -------
    offsets : ndarray of shape (n_queries + 1,), int64
        Query ``q``'s results are ``[offsets[q], offsets[q + 1])`` of the two arrays below.
    dist : ndarray of shape (offsets[-1],), int64
    idx : ndarray of shape (offsets[-1],), int64
    """
    n_queries = query_words.shape[0]
    if exclude is None:
        exclude = np.full(n_queries, -1, dtype=np.int64)
    query_words = np.ascontiguousarray(query_words)
    radius = min(int(radius), n_bits)
    counts = np.zeros(n_queries, dtype=np.int64)
    run_on_threads(n_threads, _radius_count, db_words, query_words, radius, exclude, counts)
    offsets = np.zeros(n_queries + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    idx = np.empty(offsets[-1], dtype=np.int64)
    dist = np.empty(offsets[-1], dtype=np.int64)
    run_on_threads(n_threads, _radius_fill, db_words, query_words, radius, exclude, offsets, idx, dist)
    if sort_results:
        run_on_threads(n_threads, _sort_by_distance, offsets, idx, dist, radius)
    return offsets, dist, idx
