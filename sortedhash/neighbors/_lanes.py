"""LLVM vector code for the scan: sixteen queries in the lanes of one vector (numba intrinsics).

numba vectorises loops over the rows of a block, one query at a time, and every distance
then costs a store and a minimum besides the XOR and the popcount. Here each database row
is broadcast to all lanes and compared with sixteen queries at once, and the distances never
leave the registers: a step over :data:`SCAN_ROWS` rows keeps only each lane's minimum and
compares it with the lane's threshold; the steps with a row under a threshold are noted in a
buffer (which lanes), and the scan goes on; :func:`rows_below` then finds a noted lane's rows.
LLVM lowers the ``<16 x i64>`` vectors to the
machine's registers (two 512-bit ones with AVX-512, four 256-bit ones with AVX2) and the
popcount to ``vpopcntq`` where the CPU has it, a table lookup elsewhere.

Each code width gets straight-line code with the query words held in registers, behind one
switch on the width a call. That pays while the registers
hold them: measured on one machine compiling for AVX-512 (VPOPCNTDQ) and for AVX2
(``research/NOTES.md``), sixteen lanes beat the row-at-a-time kernel up to eight words (the
widest measured) with AVX-512 and at one word only with AVX2. :data:`MAX_WORDS` follows the CPU numba compiles
for.
"""

import functools

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils, config
from numba.core.errors import TypingError
from numba.extending import intrinsic

__all__ = ["LANES", "MAX_WORDS", "MIN_QUERIES", "SCAN_ROWS", "WIDEST", "lane_popcount_pass", "rows_below", "scan_hits"]

LANES = 16  # queries a vector group
SCAN_ROWS = 16  # rows a step of scan_hits: one compare with the thresholds a step
WIDEST = 8  # widest codes, in 64-bit words, the intrinsics take
PREFETCH_ROWS = 256  # rows ahead the scan asks for (2 KiB of a word): a group alone streams its rows


def _target_features():
    """The CPU features numba compiles for (NUMBA_CPU_FEATURES, else the host's)."""
    features = config.CPU_FEATURES  # None: numba compiles with the host's
    if features is None:
        features = llvm.get_host_cpu_features().flatten()
    return {f[1:] for f in features.split(",") if f.startswith("+")}


def _max_words(enabled):
    """Widest codes, in 64-bit words, that the lane kernel runs faster (0: never)."""
    if "avx512f" in enabled:
        return 8  # 32 vector registers: eight words of sixteen lanes take sixteen of them
    if "avx2" in enabled:
        return 1  # 16 registers: more words spill (slower than the row kernel)
    return 0  # not measured elsewhere


def _min_queries(enabled):
    """Queries from which a group of sixteen lanes, however many it holds, beats the
    one-query kernel: a group costs a scan whatever its fill. Measured (1M random codes,
    k = 10 and 100, one thread, AMD EPYC Zen 5): with AVX-512 code the two break even at 6-8
    queries at 64 bits (6 queries 0.34 ms one at a time against 0.41 a group, 12 queries 0.61
    against 0.41), at ~5 at 128 and 256 bits (8 queries 1.13 against 0.82 ms, 2.40 against
    1.74); with AVX2 code at ~14 (2.55 ms a group, 0.18 a query)."""
    return 8 if "avx512f" in enabled else LANES


_FEATURES = _target_features()
MAX_WORDS = _max_words(_FEATURES)
MIN_QUERIES = _min_queries(_FEATURES)
# A step's sixteen distances reduced as a balanced tree (all sixteen live at once) where 32
# vector registers hold them; as a chain with AVX2's sixteen (the tree spills there).
_TREE = "avx512f" in _FEATURES

_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_VECTOR = ir.VectorType(_I64, LANES)
_HALVES = ir.VectorType(_I32, 2 * LANES)  # the same bits as 32-bit halves
_ZERO = ir.Constant(_I64, 0)


def _check(db, queries, thresh, n_words):
    """Typing checks shared by the intrinsics (thresh may be None)."""
    if not isinstance(n_words, types.Integer):
        raise TypingError(f"n_words must be an integer (1 to {WIDEST})")
    if not (isinstance(db, types.Array) and db.ndim == 2 and db.dtype == types.uint64):
        raise TypingError("db must be a 2-D uint64 array (words, rows)")
    if not (isinstance(queries, types.Array) and queries.ndim == 2 and queries.dtype == types.uint64
            and queries.layout == "C"):
        raise TypingError("queries must be a C-contiguous 2-D uint64 array (words, LANES)")
    if thresh is not None and not (isinstance(thresh, types.Array) and thresh.ndim == 1
                                   and thresh.dtype == types.int64 and thresh.layout == "C"):
        raise TypingError("thresh must be a C-contiguous 1-D int64 array (LANES,)")


def _per_width(emit, position):
    """A codegen that runs ``emit(context, builder, signature, args, n_words)`` once a code
    width (1 to ``WIDEST``) behind a switch on the value of argument ``position``: each width
    gets straight-line code, and the switch runs once a call, outside the loops."""

    def codegen(context, builder, signature, args):
        width = context.cast(builder, args[position], signature.args[position], types.int64)
        blocks = [builder.append_basic_block(f"lanes.words{w}") for w in range(1, WIDEST + 1)]
        merge = builder.append_basic_block("lanes.words.done")
        switch = builder.switch(width, blocks[-1])  # the caller keeps 1 <= n_words <= WIDEST
        results = []
        for w, block in enumerate(blocks, start=1):
            switch.add_case(ir.Constant(_I64, w), block)
            builder.position_at_end(block)
            results.append((emit(context, builder, signature, args, w), builder.basic_block))
            builder.branch(merge)
        builder.position_at_end(merge)
        result = builder.phi(results[0][0].type)
        for value, block in results:
            result.add_incoming(value, block)
        return result

    return codegen


class _Codegen:
    """Builds the distances of one database row to the sixteen query lanes."""

    def __init__(self, context, builder, signature, args, n_words):
        self.builder = builder
        db = context.make_array(signature.args[0])(context, builder, args[0])
        self.db_bytes = builder.bitcast(db.data, ir.IntType(8).as_pointer())
        self.word_stride, self.row_stride = cgutils.unpack_tuple(builder, db.strides, 2)
        self.n_words = n_words
        fnty = ir.FunctionType(_VECTOR, [_VECTOR])
        name = f"llvm.ctpop.v{LANES}i64"
        self.ctpop = builder.module.globals.get(name) or ir.Function(builder.module, fnty, name)

    def load_lanes(self, array_struct):
        """The query words, one <16 x i64> vector per word (the array is (n_words, LANES), C)."""
        pointer = self.builder.bitcast(array_struct.data, _VECTOR.as_pointer())
        return [self.builder.load(self.builder.gep(pointer, [ir.Constant(_I32, w)]), align=8)
                for w in range(self.n_words)]

    def prefetch(self, row):
        """Start loading ``row``'s words into the caches (LLVM prefetch for a read)."""
        b = self.builder
        byte = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [byte, _I32, _I32, _I32])
        prefetch = b.module.globals.get("llvm.prefetch.p0") or b.module.declare_intrinsic(
            "llvm.prefetch", [byte], fnty=fnty)
        for w in range(self.n_words):
            b.call(prefetch, [self.word_at(w, row), ir.Constant(_I32, 0), ir.Constant(_I32, 3),
                              ir.Constant(_I32, 1)])

    def word_at(self, w, row):
        """i8* to word ``w`` of database row ``row``."""
        b = self.builder
        return b.gep(self.db_bytes, [b.add(b.mul(ir.Constant(_I64, w), self.word_stride), b.mul(row, self.row_stride))])

    def distances(self, lanes, row):
        """<16 x i64>: the Hamming distance of database row ``row`` to each lane's query."""
        b = self.builder
        total = None
        for w, query in enumerate(lanes):
            word = b.load(b.bitcast(self.word_at(w, row), _I64.as_pointer()), align=8)
            count = b.call(self.ctpop, [b.xor(query, _splat(b, word))])
            total = count if total is None else b.add(total, count)
        return total


def _open_loop(builder, start, stop, name):
    """Blocks of a loop over ``r = start, start + SCAN_ROWS, ...``: the block before it, the
    loop's body (the builder is left at its start), the block after it and ``r`` (a phi)."""
    before = builder.basic_block
    loop = builder.append_basic_block(f"lanes.{name}")
    done = builder.append_basic_block(f"lanes.{name}.done")
    builder.cbranch(builder.icmp_signed("<", start, stop), loop, done)
    builder.position_at_end(loop)
    r = builder.phi(_I64)
    r.add_incoming(start, before)
    return before, loop, done, r


def _thresholds(context, builder, aryty, value):
    """The sixteen lanes' thresholds as one vector."""
    array = context.make_array(aryty)(context, builder, value)
    return builder.load(builder.bitcast(array.data, _VECTOR.as_pointer()), align=8)


def _lane_bits(builder, flags):
    """<16 x i1> -> i64 with bit j set for lane j."""
    return builder.zext(builder.bitcast(flags, ir.IntType(LANES)), _I64)


def _reduce(combine, values):
    """``values`` combined by ``combine``: a balanced tree with AVX-512, a chain with AVX2
    (:data:`_TREE`). LLVM keeps a chain of selects as written, and sixteen one-cycle
    minimums in a chain are sixteen cycles of latency a step, in a tree four: measured (1M
    random codes, k = 100, one thread, AMD EPYC Zen 5, ``research/NOTES.md``) +3-5 % at 64
    bits, even at 128-384 bits and at k = 1; with AVX2 code the tree ran 8-9 % slower."""
    if not _TREE:
        return functools.reduce(combine, values)
    while len(values) > 1:
        values = [combine(a, b) for a, b in zip(values[::2], values[1::2])] + values[len(values) // 2 * 2:]
    return values[0]


def _splat(builder, value):
    """<16 x i64> with ``value`` (i64) in every lane."""
    vector = builder.insert_element(ir.Constant(_VECTOR, ir.Undefined), value, ir.Constant(_I32, 0))
    return builder.shuffle_vector(vector, vector, ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES))


@intrinsic
def scan_hits(typingctx, db, start, stop, queries, thresh, n_words, hit_rows, hit_lanes):
    """Scan steps ``start, start + SCAN_ROWS, ...`` (before ``stop``) and note each step
    with a row at distance ``< thresh[j]`` from some lane ``j``'s query: its first row at
    ``hit_rows[n]`` and the mask of those lanes (bit ``j``) at ``hit_lanes[n]``;
    :func:`rows_below` gives a lane's rows. Returns the number of steps noted; it stops
    early when ``hit_rows`` (at least one long) is full, and the caller resumes after the
    last step noted. ``stop - start`` must be a multiple of ``SCAN_ROWS``.

    The thresholds hold for the whole call (the caller checks each row against the lane's
    current threshold). No branch: every step is written at the next slot, which the count
    moves past when some lane is under. A branch to a block that noted the step's rows
    (taken on ~5 % of steps at 1M x 64 bits, k = 100) cost more when mispredicted, with the
    scan's work in flight, than the store costs every step: 1M random codes, k = 100, 64 bits
    +12 % with one thread and +24 % with two, 256 bits +7 %, 384 bits +11 %; k = 1 and 10
    +5 %, k = 1,000 even (``research/NOTES.md``)."""
    _check(db, queries, thresh, n_words)
    for name, array, dtype in (("hit_rows", hit_rows, types.int64), ("hit_lanes", hit_lanes, types.uint64)):
        if not (isinstance(array, types.Array) and array.ndim == 1 and array.dtype == dtype and array.layout == "C"):
            raise TypingError(f"{name} must be a C-contiguous 1-D {dtype} array")
    sig = types.int64(db, types.int64, types.int64, queries, thresh, n_words, hit_rows, hit_lanes)

    def emit(context, builder, signature, args, n_words):
        gen = _Codegen(context, builder, signature, args, n_words)
        lanes = gen.load_lanes(context.make_array(signature.args[3])(context, builder, args[3]))
        limit = _thresholds(context, builder, signature.args[4], args[4])
        rows_array = context.make_array(signature.args[6])(context, builder, args[6])
        capacity = cgutils.unpack_tuple(builder, rows_array.shape, 1)[0]
        lanes_hit = context.make_array(signature.args[7])(context, builder, args[7]).data
        stop = args[2]
        before, loop, done, r = _open_loop(builder, args[1], stop, "hits")
        n = builder.phi(_I64)
        n.add_incoming(_ZERO, before)
        # A group alone streams its rows from memory: ask for them a few steps ahead.
        for line in range(0, SCAN_ROWS, 8):  # a 64-byte line holds 8 rows of a word
            gen.prefetch(builder.add(r, ir.Constant(_I64, PREFETCH_ROWS + line)))
        # The minimum is taken over 32-bit halves: a distance (< 2**31) leaves the high half
        # of its lane zero, so the halves' minimum is the lanes' minimum, and a 32-bit
        # minimum (vpminsd: one cycle) keeps up with the popcount where the 64-bit one
        # (vpminsq: three cycles, one port) ran the scan at ~0.77 of the popcount pass.
        distances = [builder.bitcast(gen.distances(lanes, builder.add(r, ir.Constant(_I64, i))), _HALVES)
                     for i in range(SCAN_ROWS)]
        lowest = _reduce(lambda a, c: builder.select(builder.icmp_signed("<", a, c), a, c), distances)
        bits = _lane_bits(builder, builder.icmp_signed("<", builder.bitcast(lowest, _VECTOR), limit))
        builder.store(r, builder.gep(rows_array.data, [n]))
        builder.store(bits, builder.gep(lanes_hit, [n]))
        count = builder.add(n, builder.zext(builder.icmp_unsigned("!=", bits, _ZERO), _I64))

        # On to the next step unless the rows end or the buffer is full.
        step = builder.add(r, ir.Constant(_I64, SCAN_ROWS))
        go_on = builder.and_(builder.icmp_signed("<", step, stop), builder.icmp_signed("<", count, capacity))
        last = builder.basic_block
        r.add_incoming(step, last)
        n.add_incoming(count, last)
        builder.cbranch(go_on, loop, done)
        builder.position_at_end(done)
        noted = builder.phi(_I64)
        noted.add_incoming(_ZERO, before)  # no step at all
        noted.add_incoming(count, last)
        return noted

    return sig, _per_width(emit, 5)


@intrinsic
def rows_below(typingctx, db, row, queries, lane, t, n_words):
    """Bit ``i`` set where database row ``row + i`` (``i < SCAN_ROWS``) is at distance
    ``< t`` from lane ``lane``'s query: a step :func:`scan_hits` noted, for one lane, its
    sixteen rows in one vector (the database's words are row-contiguous)."""
    _check(db, queries, None, n_words)
    if db.layout != "C":
        raise TypingError("db must be C-contiguous: a step's rows of a word are loaded as one vector")
    sig = types.int64(db, types.int64, queries, types.int64, types.int64, n_words)

    def emit(context, builder, signature, args, n_words):
        b = builder
        gen = _Codegen(context, builder, signature, args, n_words)
        query_data = context.make_array(signature.args[2])(context, builder, args[2]).data
        row, lane, t = args[1], args[3], args[4]
        total = None
        for w in range(n_words):
            words = b.load(b.bitcast(gen.word_at(w, row), _VECTOR.as_pointer()), align=8)
            query = b.load(b.gep(query_data, [b.add(ir.Constant(_I64, w * LANES), lane)]))
            count = b.call(gen.ctpop, [b.xor(words, _splat(b, query))])
            total = count if total is None else b.add(total, count)
        return _lane_bits(b, b.icmp_signed("<", total, _splat(b, t)))

    return sig, _per_width(emit, 5)


@intrinsic
def lane_popcount_pass(typingctx, db, start, stop, queries, n_words):
    """Every distance of rows ``[start, stop)`` to the sixteen lanes, with no selection: the
    XOR + popcount work of :func:`scan_hits` alone, an add per distance to keep it (the
    popcount bound of the benchmarks). Returns a checksum of the distances (the steps' sums,
    XORed). ``stop - start`` must be a multiple of ``SCAN_ROWS``."""
    _check(db, queries, None, n_words)
    sig = types.int64(db, types.int64, types.int64, queries, n_words)

    def emit(context, builder, signature, args, n_words):
        gen = _Codegen(context, builder, signature, args, n_words)
        lanes = gen.load_lanes(context.make_array(signature.args[3])(context, builder, args[3]))
        start, stop = args[1], args[2]
        zero = ir.Constant(_VECTOR, [0] * LANES)
        before, loop, done, r = _open_loop(builder, start, stop, "pass")
        acc = builder.phi(_VECTOR)
        acc.add_incoming(zero, before)
        # Each step's distances are summed afresh (reduced as the scan reduces them), then
        # XORed into the result: summed straight into it, LLVM chains every add of the block
        # on one register, and the pass ran ~20 % slower than the scan with k = 1 (1M x 64
        # bits, AVX-512, AMD EPYC).
        step_sum = _reduce(builder.add, [gen.distances(lanes, builder.add(r, ir.Constant(_I64, i)))
                                         for i in range(SCAN_ROWS)])
        total = builder.xor(acc, step_sum)
        for line in range(0, SCAN_ROWS, 8):  # the scan's prefetch (memory, not popcounts, would bound it)
            gen.prefetch(builder.add(r, ir.Constant(_I64, PREFETCH_ROWS + line)))
        step = builder.add(r, ir.Constant(_I64, SCAN_ROWS))
        last = builder.basic_block
        r.add_incoming(step, last)
        acc.add_incoming(total, last)
        builder.cbranch(builder.icmp_signed("<", step, stop), loop, done)

        builder.position_at_end(done)
        sums = builder.phi(_VECTOR)
        sums.add_incoming(zero, before)
        sums.add_incoming(total, last)
        out = builder.extract_element(sums, ir.Constant(_I32, 0))
        for j in range(1, LANES):
            out = builder.add(out, builder.extract_element(sums, ir.Constant(_I32, j)))
        return out

    return sig, _per_width(emit, 4)
