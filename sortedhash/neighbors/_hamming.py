"""HammingNeighbors: exact nearest neighbours over packed binary codes."""

import json
import time
from numbers import Integral
from pathlib import Path

import numpy as np
from joblib import effective_n_jobs
from sklearn.base import BaseEstimator
from sklearn.neighbors._base import KNeighborsMixin, RadiusNeighborsMixin
from sklearn.utils import check_scalar
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._safe_state import SafeStateMixin
from .._versions import VersionedMixin, check_versions
from ..bits import check_codes, pairwise_hamming
from ._kernels import (_CACHED_DB_BYTES, estimate_kth, estimate_sample, knn_search, pack_words, radius_search,
                       scans_in_groups)
from ._lanes import MIN_QUERIES
from ._mih import (SCAN_CODES_PER_WORK, MultiIndex, auto_n_substrings, build_multi_index, extend_multi_index,
                   mih_knn, mih_radius, probe_count)
from ._mih import is_compiled as mih_compiled
from ._try_history import TryHistory

__all__ = ["HammingNeighbors"]

# Rows of the database compared at once in the numpy paths: bounds memory to
# O(query chunk x _DB_CHUNK) whatever the database size.
_DB_CHUNK = 1 << 16
_QUERY_CHUNK = 256
# algorithm="auto": tables built from this many codes; queries timed through MIH, and
# through the scan, before the rest go the faster way.
_AUTO_MIH_MIN = 2**17
_MIH_MAX_ROWS = 2**32  # row numbers in the tables take at most four bytes
_AUTO_SAMPLE = 16
_AUTO_MAX_SAMPLE = 96
_AUTO_SCAN_SAMPLE = 16  # one query chunk of the scan kernel: it runs them together
_AUTO_SCAN_SHARE = 8  # ... over an eighth of the codes (more than the cache holds): the cost of two lone scans
_AUTO_LOAD_ROWS = 4096  # codes the scan is loaded (or compiled) on before it is timed
_AUTO_ESTIMATE_MARGIN = 4  # a few queries' estimated k-th distances must put MIH's probes this far over budget
_INDEX_FORMAT = "sortedhash.HammingNeighbors.index/1"


def _mean_time(batches):
    """Seconds a query over MIH batches of (queries, seconds), the first left out when
    there are more (it ran on cold caches)."""
    kept = batches[1:] if len(batches) > 1 else batches
    return sum(t for _, t in kept) / sum(n for n, _ in kept)


def _mih_cannot_win(index, kth, budget):
    """Whether MIH would overrun ``budget`` for most queries whose k-th distances are (about)
    ``kth``: to prove a k-th distance d it probes every bucket within ``d // m`` bits of the
    query's substring in each of its m tables (pigeonhole), and those probes alone are work.
    Wide codes with many neighbours need millions (384 bits, k = 1,000, 1M codes: the k-th
    distance ~150, 19 tables of 20 bits, 2.6M probes against a budget of 25,000), and timing
    MIH there cost the search ~10 %."""
    # The probes grow with the distance: most queries are over budget when the one at the
    # majority's edge is.
    edge = np.sort(kth)[len(kth) - len(kth) // 2 - 1]
    return probe_count(index, int(edge)) > budget


class HammingNeighbors(KNeighborsMixin, RadiusNeighborsMixin, SafeStateMixin, VersionedMixin, BaseEstimator):
    """Exact nearest neighbours in Hamming distance over packed binary codes.

    Mirrors :class:`sklearn.neighbors.NearestNeighbors`, with two differences: input is
    packed ``uint8`` codes (as every sortedhash transformer returns, faiss's bit order), and
    distances are integer Hamming counts (not scikit-learn's fraction of differing bits).
    Ties in distance are broken by database index, so results equal a stable sort of all
    distances and are deterministic.

    Parameters
    ----------
    n_neighbors : int, default=5
        Neighbours returned by :meth:`kneighbors` when not given there.
    radius : int, default=2
        Hamming radius of :meth:`radius_neighbors` when not given there. Inclusive:
        distance ``<= radius`` (scikit-learn's convention; faiss's range search is strict).
    backend : {"numba", "numpy", "faiss"}, default="numba"
        Search engine: compiled blocked kernels, a chunked numpy reference (XOR +
        ``np.bitwise_count`` + stable sort), or faiss's ``IndexBinaryFlat`` for k-NN (when
        installed; its results are re-sorted so ties also go to the lower index within the
        k found; radius queries then use the numpy path).
    algorithm : {"auto", "brute", "mih"}, default="auto"
        How the numba backend finds neighbours (results are identical):

        - ``"brute"``: a blocked scan of every code (best for small collections, short
          codes against uniform data, or large k).
        - ``"mih"``: multi-index hashing (Norouzi et al., 2012), exact and sublinear: the
          codes are cut into ``n_substrings`` substrings, each indexed in a table, and a
          query probes the tables at growing substring radius until the pigeonhole
          principle proves its k-th distance. Wins when neighbours are close, as with
          learned codes of large collections; costs tables of about
          ``4 * n_substrings`` bytes a code.
        - ``"auto"``: the tables are built when ``n_samples >= 2**17``; each k-NN call
          times its first queries both ways and sends the rest the faster way
          (radius queries: by the number of buckets to probe). MIH queries that overrun a
          work budget of a few scans are scanned instead. Calls of 16 queries or fewer,
          too few to time, try MIH within what scanning them would cost; where over three
          quarters of a kind of call's (k, number of queries) recent tries lost, the estimator
          scans those calls without a try for a while (what it learned is not pickled and
          is forgotten by ``fit``).

        The numpy and faiss backends always scan.
    n_substrings : int or "auto", default="auto"
        Substrings (tables) of ``"mih"``. ``"auto"``: substrings of ``floor(log2 N)``
        bits, the paper's rule rounded so that no table has more keys than codes.
    n_jobs : int, default=None
        Threads of the numba and faiss backends. ``None`` means 1 unless in a
        :func:`joblib.parallel_config` context; -1 means all cores (scikit-learn's
        convention).

    Attributes
    ----------
    n_samples_fit_ : int
        Number of fitted codes.
    n_features_in_ : int
        Bytes of one code.
    n_bits_ : int
        ``8 * n_features_in_``.
    n_substrings_ : int or None
        Tables of the multi-index, None when none was built.

    Notes
    -----
    ``fit`` copies a writeable ``X`` but keeps a read-only one (``np.memmap(mode="r")``,
    or any array with ``flags.writeable`` False) as it is: a memory-mapped database stays
    on disk, and 64-bit codes are searched in place; wider codes get one word-major copy
    for the scan. :meth:`save_index` and :meth:`load_index` keep the tables too.
    """

    _parameter_constraints = {
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "radius": [Interval(Integral, 0, None, closed="left")],
        "backend": [StrOptions({"numba", "numpy", "faiss"})],
        "algorithm": [StrOptions({"auto", "brute", "mih"})],
        "n_substrings": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "n_jobs": [Integral, None],
    }
    _safe_arrays = ("_fit_X",)
    _safe_values = ("n_samples_fit_", "n_features_in_", "n_bits_")

    def __init__(self, *, n_neighbors=5, radius=2, backend="numba", algorithm="auto", n_substrings="auto",
                 n_jobs=None):
        self.n_neighbors = n_neighbors
        self.radius = radius
        self.backend = backend
        self.algorithm = algorithm
        self.n_substrings = n_substrings
        self.n_jobs = n_jobs

    def fit(self, X, y=None):
        """Store the database codes.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_bytes), dtype uint8
            Packed codes.
        y : None
            Ignored.

        Returns
        -------
        self : HammingNeighbors
        """
        self._validate_params()
        if self.algorithm == "mih" and self.backend != "numba":
            raise ValueError(f"algorithm='mih' needs backend='numba', got backend={self.backend!r}")
        codes = check_codes(X, name="X")
        if self.algorithm == "mih" and len(codes) >= _MIH_MAX_ROWS:
            raise ValueError(f"multi-index hashing holds up to 2**32 - 1 codes, X has {len(codes)}: use "
                             "algorithm='brute'")
        if codes.flags.writeable and np.may_share_memory(codes, X):
            codes = codes.copy()  # independent of later changes to the caller's array
        self._set_database(codes)
        self._build_index()
        self._record_versions()
        return self

    def partial_fit(self, X, y=None):
        """Append codes to the database (or fit, the first time).

        The new codes get row numbers after the fitted ones. The scan layout and the
        multi-index tables are extended, not rebuilt: the new codes' tables are built alone
        and merged in linear time, with the substrings chosen at the first fit (refit to
        choose them anew for the grown database). The database is then held in memory (a
        memory-mapped one is copied once).

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_bytes), dtype uint8
            Packed codes of the width seen at fit.
        y : None
            Ignored.

        Returns
        -------
        self : HammingNeighbors
        """
        if not hasattr(self, "_fit_X"):
            return self.fit(X)
        codes = check_codes(X, name="X", n_bytes=self.n_features_in_)
        n_old = self.n_samples_fit_
        too_many = n_old + len(codes) >= _MIH_MAX_ROWS
        if self.algorithm == "mih" and too_many:
            raise ValueError("multi-index hashing holds up to 2**32 - 1 codes: use algorithm='brute'")
        self._set_database(np.concatenate([self._fit_X, codes]))
        if self.backend == "numba":
            words = (_words(self._fit_X) if self.n_features_in_ == 8
                     else np.concatenate([self._index, pack_words(codes)], axis=1))
            mih = None  # "auto" scans beyond 2**32 - 1 codes
            if self._mih is not None and not too_many:
                mih = extend_multi_index(self._mih, words, n_old)
            elif self.algorithm == "auto" and self._auto_builds_tables():
                mih = self._new_multi_index(words)
            self._index, self._mih = words, mih
            self.n_substrings_ = None if mih is None else mih.n_substrings
        elif self.backend == "faiss":
            self._index.add(codes)
        return self

    # ---------------------------------------------------------- index files
    def save_index(self, path):
        """Write the fitted index to the directory ``path`` (created if needed), as ``.npy``
        files that :meth:`load_index` maps into memory, and ``index.json``.

        Unlike :func:`sortedhash.save`, which stores the codes and rebuilds the tables on
        load, this stores the tables too: a large index opens in seconds.

        Parameters
        ----------
        path : str or path-like
            Directory to write; files of an earlier index there are replaced.
        """
        check_is_fitted(self, "_fit_X")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        arrays = {"codes": self._fit_X}
        if self.backend == "numba" and self.n_features_in_ != 8:
            arrays["words"] = self._index
        if self._mih is not None:
            arrays.update({f"mih.{name}": getattr(self._mih, name) for name in MultiIndex.arrays})
        for name, array in arrays.items():
            np.save(path / f"{name}.npy", np.asarray(array), allow_pickle=False)
        header = {"format": _INDEX_FORMAT, "params": self.get_params(), "arrays": sorted(arrays),
                  "versions": getattr(self, "_sortedhash_versions", {})}
        (path / "index.json").write_text(json.dumps(header, indent=1))

    @classmethod
    def load_index(cls, path, *, mmap=True):
        """Open an index written by :meth:`save_index`.

        Parameters
        ----------
        path : str or path-like
            Directory written by :meth:`save_index`.
        mmap : bool, default=True
            Map the arrays into memory read-only (opening takes about no time and no RAM;
            pages are read as searches touch them) instead of reading them.

        Returns
        -------
        neighbors : HammingNeighbors
            Fitted, with the saved parameters.
        """
        path = Path(path)
        header = json.loads((path / "index.json").read_text())
        if header.get("format") != _INDEX_FORMAT:
            raise ValueError(f"{path} is not a HammingNeighbors index of format {_INDEX_FORMAT}")
        arrays = {name: np.load(path / f"{name}.npy", mmap_mode="r" if mmap else None, allow_pickle=False)
                  for name in header["arrays"]}
        estimator = cls(**header["params"])
        estimator._set_database(arrays["codes"])
        estimator._sortedhash_versions = header["versions"]
        check_versions(header["versions"])
        mih = None
        if "mih.rows" in arrays:
            mih = MultiIndex(*(arrays[f"mih.{name}"] for name in MultiIndex.arrays))
        estimator._build_index(multi_index=mih, words=arrays.get("words"))
        return estimator

    def _set_database(self, codes):
        self.__dict__.pop("_tries", None)  # what auto learned of other codes
        self._fit_X = codes
        self.n_samples_fit_, self.n_features_in_ = codes.shape
        self.n_bits_ = 8 * self.n_features_in_

    def _auto_builds_tables(self):
        return _AUTO_MIH_MIN <= self.n_samples_fit_ < _MIH_MAX_ROWS

    def _new_multi_index(self, words):
        m = auto_n_substrings(len(self._fit_X), self.n_bits_) if self.n_substrings == "auto" else self.n_substrings
        return build_multi_index(words, self.n_bits_, min(m, self.n_bits_))

    def _build_index(self, multi_index=None, words=None):
        # Derived from _fit_X only, so pickles and safe files drop it and rebuild on load.
        self._mih, self.n_substrings_ = None, None
        if self.backend == "numba":
            self._index = _words(self._fit_X) if words is None else words
            if multi_index is not None:
                self._mih = multi_index
            elif self.algorithm == "mih" or (self.algorithm == "auto" and self._auto_builds_tables()):
                self._mih = self._new_multi_index(self._index)
            if self._mih is not None:
                self.n_substrings_ = self._mih.n_substrings
        elif self.backend == "faiss":
            import faiss

            self._index = faiss.IndexBinaryFlat(self.n_bits_)
            self._index.add(self._fit_X)
        else:
            self._index = None

    @classmethod
    def _from_safe_state(cls, params, arrays, values):
        estimator = super()._from_safe_state(params, arrays, values)
        estimator._build_index()
        return estimator

    def __getstate__(self):
        state = self.__dict__.copy()
        # faiss indexes cannot be pickled; the scan layout and the tables are rebuilt on load.
        state.pop("_index", None)
        state.pop("_mih", None)
        state.pop("_tries", None)  # how this process's calls went, not the model
        if isinstance(state.get("_fit_X"), np.memmap):
            state["_fit_X"] = np.asarray(state["_fit_X"])  # the data, not a handle to a file
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "_fit_X" in state:
            self._build_index()

    @property
    def _try_history(self):
        """What ``"auto"`` remembers of its few-query calls' MIH tries (:mod:`._try_history`)."""
        history = self.__dict__.get("_tries")
        if history is None:
            history = self._tries = TryHistory()
        return history

    @property
    def _threads(self):
        return effective_n_jobs(self.n_jobs)

    def _queries(self, X):
        """Query codes, and whether they are the fitted codes themselves (leave-one-out)."""
        check_is_fitted(self, "_fit_X")
        if X is None:
            return self._fit_X, True
        return check_codes(X, name="X", n_bytes=self.n_features_in_), False

    # ------------------------------------------------------------------ k-NN
    def kneighbors(self, X=None, n_neighbors=None, return_distance=True):
        """Find the k nearest codes of each query.

        Parameters
        ----------
        X : ndarray of shape (n_queries, n_bytes), dtype uint8, default=None
            Query codes. None queries every fitted code against the others, leaving each
            code's own row out (as scikit-learn does).
        n_neighbors : int, default=None
            Defaults to the constructor's ``n_neighbors``.
        return_distance : bool, default=True
            Whether to return the distances.

        Returns
        -------
        neigh_dist : ndarray of shape (n_queries, n_neighbors), int64
            Hamming distances, ascending; only when ``return_distance``.
        neigh_ind : ndarray of shape (n_queries, n_neighbors), int64
            Database indices, ties by lower index.
        """
        queries, self_query = self._queries(X)
        k = check_scalar(self.n_neighbors if n_neighbors is None else n_neighbors, "n_neighbors", Integral,
                         min_val=1)
        available = self.n_samples_fit_ - int(self_query)
        if k > available:
            raise ValueError(
                f"n_neighbors={k} is larger than the {available} codes that can be returned "
                f"(n_samples_fit={self.n_samples_fit_}{', excluding the query itself' if self_query else ''})"
            )
        exclude = np.arange(len(queries), dtype=np.int64) if self_query else None
        if self.backend == "numba":
            dist, ind = self._numba_knn(queries, k, exclude)
        elif self.backend == "faiss":
            dist, ind = self._faiss_knn(queries, k, self_query)
        else:
            dist, ind = self._numpy_knn(queries, k, exclude)
        return (dist, ind) if return_distance else ind

    def _numba_knn(self, queries, k, exclude):
        query_words = pack_words(queries).T
        if self._mih is None or self.algorithm == "brute":
            return knn_search(self._index, query_words, k, self.n_bits_, exclude, self._threads)
        if self.algorithm == "mih":
            dist, ind, _ = mih_knn(self._index, self._mih, query_words, k, exclude, n_threads=self._threads)
            return dist, ind
        return self._auto_knn(query_words, k, exclude)

    def _few_queries_overrun_mih(self, query_words, k, budget):
        """Whether MIH's probes alone would overrun its budget by far for most of these
        queries, judged by their k-th distances estimated from a sample of the codes
        (:func:`~._kernels.estimate_kth`): then not even MIH's call is paid (384-bit codes,
        k = 1,000, one query: ~95 us of a ~1.4 ms scan). Where the sample holds fewer than
        two of the k nearest in expectation, it cannot tell their distance, and MIH, which
        wins there, would pay for it (~7 us a call of ~120 at k = 100 on 1M learned codes):
        MIH's own checkpoint judges those queries."""
        blocks, block, _ = estimate_sample(self.n_samples_fit_, k)
        if k * blocks * block < 2 * self.n_samples_fit_:
            return False
        kth = estimate_kth(self._index, query_words, k)
        return _mih_cannot_win(self._mih, kth, _AUTO_ESTIMATE_MARGIN * budget)

    def _auto_knn(self, query_words, k, exclude):
        """MIH where it is faster than the scan, the scan elsewhere (same results).

        A query's MIH work (bucket probes + candidates checked) is capped at a few scans'
        worth; queries that overrun are scanned, and one that does a sixteenth of it gives up
        there when proving its k-th distance, estimated from a sample of the codes, would
        overrun (:func:`~._mih.mih_knn`). 16 queries are timed through the scan (over
        all the codes when the cache holds them, their results kept; else over an eighth of
        them), the next ones (16 to 96, until the choice is clear) through MIH, and the rest
        take the faster way (the scan when most sampled MIH queries overran): the overhead
        is at most two scans' worth when MIH wins, and the sample's MIH work when it loses.
        The MIH sample is skipped when the scanned queries' k-th distances show that MIH
        would overrun anyway (:func:`_mih_cannot_win`). Up to 16 queries go to MIH, or to
        the scan when :meth:`_few_queries_overrun_mih`; fewer than
        :data:`~._lanes.MIN_QUERIES` try MIH together on the budget, and from MIN_QUERIES on
        the first alone tries it on its share of a group's scan: if it overruns, all are
        scanned together. Calls of a kind (k, number of queries) where over three quarters
        of the recent tries lost (cost more work than the scan) go to the scan without a try,
        MIH tried again after 2, 4, ... 64 calls (:mod:`._try_history`).
        """
        n_queries = len(query_words)
        # Calls of a kind whose recent tries mostly lost go to the scan without one for a
        # while (TryHistory); first thing, as the scan alone would be.
        history, key = self._try_history, (k, n_queries)
        if n_queries <= _AUTO_SAMPLE and history.scan_without_try(key):
            return knn_search(self._index, query_words, k, self.n_bits_, exclude, self._threads)
        if exclude is None:
            exclude = np.full(n_queries, -1, dtype=np.int64)
        budget = max(1, 2 * self.n_samples_fit_ // SCAN_CODES_PER_WORK)

        overrun = 0  # sampled MIH queries over their budget
        work = None  # of the last MIH call's queries (-1: over budget)

        def by_mih(part, threads, budget=budget):
            nonlocal overrun, work
            d, i, work = mih_knn(self._index, self._mih, query_words[part], k, exclude[part], budget, threads)
            over = np.flatnonzero(work < 0)
            if len(over):
                rows = np.arange(n_queries)[part][over]
                d[over], i[over] = knn_search(self._index, query_words[rows], k, self.n_bits_, exclude[rows],
                                              threads)
            overrun += len(over)
            return d, i

        def by_scan(part, threads):
            return knn_search(self._index, query_words[part], k, self.n_bits_, exclude[part], threads)

        def first_codes(n):  # typed as the index (read-only or not), so no new compilation
            codes = np.ascontiguousarray(self._index[:, :n])
            codes.flags.writeable = codes.flags.writeable and self._index.flags.writeable
            return codes

        if n_queries <= _AUTO_SAMPLE:  # too few to time both ways
            if self._few_queries_overrun_mih(query_words, k, budget):
                return by_scan(slice(None), self._threads)
            # MIH first. Fewer than MIN_QUERIES try it together, each on the budget (about
            # two scans; those over it are scanned): where MIH loses, a query stops at its
            # checkpoint, and calls stop trying (TryHistory); where MIH and the scan are close
            # (1M learned codes, k = 100), the 12 % of queries past one scan's work needed 1.9
            # of it on average, and a budget of one scan made them pay it and the scan (auto ÷
            # the better 0.74-0.77 a lone query, 0.96 with two). From MIN_QUERIES on the first
            # alone tries it, on its share of a group's scan, and if it overruns all go to
            # the scan, which takes them together (16 queries that each spent the budget
            # once took up to 6x the scan).
            if not scans_in_groups(self._index.shape[0], n_queries):  # scanned one at a time
                result = by_mih(slice(None), self._threads)
                history.record(key, n_queries, overrun)
                return result
            probe = max(1, budget * MIN_QUERIES // (2 * n_queries))
            d, i, first = mih_knn(self._index, self._mih, query_words[:1], k, exclude[:1], probe, self._threads)
            if first[0] < 0:
                history.record(key, 1, 1)
                return by_scan(slice(None), self._threads)
            rest = by_mih(slice(1, None), self._threads)
            # The call lost when the rest's MIH work (an overrun's budget counted) passed
            # their share of the group's scan: about half of `probe` a query (1M 64-bit
            # codes, AVX-512: a group 0.41-0.50 ms, a lone query's scan 0.11-0.13 ms). One
            # outcome a call, as for its first query: a single heavy query can tip a call.
            spent = sum(budget if w < 0 else w for w in work.tolist())  # a few: quicker than numpy
            lost = spent > (probe // 2) * (n_queries - 1)
            history.record(key, 1, int(lost))
            return np.concatenate([d, rest[0]]), np.concatenate([i, rest[1]])
        # The samples run on one thread each, so the costs compare whatever n_jobs. The scan
        # runs its queries 16 at a time (one vector), so one or two queries alone cost it
        # about twice as much a query as the rest will: time a full group of queries.
        parts, done = [], 0
        rows = min(self.n_samples_fit_ // _AUTO_SCAN_SHARE, _CACHED_DB_BYTES // self._index.shape[0] // 8)
        # Load (or compile) both scan kernels before timing anything: a group of queries takes
        # the sixteen-query one, a lone query (one over its MIH budget) the one-query one.
        few = first_codes(min(self.n_samples_fit_, max(k, _AUTO_LOAD_ROWS)))
        for group in (slice(0, 1), slice(0, _AUTO_SCAN_SAMPLE)):
            knn_search(few, query_words[group], k, self.n_bits_, exclude[group], 1)
        if self._index.nbytes <= _CACHED_DB_BYTES:
            # Codes the cache holds: the first group over all of them, as the search runs it
            # (its results are kept). Scaled up from a share of the codes, the scan's
            # selection was counted several times over: with k = 100 on 1M codes it read at
            # half the scan's speed, and MIH was chosen at 0.6-0.75 of the scan.
            first = slice(0, _AUTO_SCAN_SAMPLE)
            start = time.perf_counter()
            parts.append(by_scan(first, 1))
            done = len(parts[0][0])
            scan_time = (time.perf_counter() - start) / done
            kth = parts[0][0][:, k - 1]
        elif k < rows:
            # Over an eighth of the codes (scan time is linear in the codes) and at most what
            # the cache holds, timed the second time: a group alone would read the codes from
            # memory, where the whole search reads them once for many groups.
            codes, sample = first_codes(rows), slice(0, _AUTO_SCAN_SAMPLE)
            knn_search(codes, query_words[sample], k, self.n_bits_, exclude[sample], 1)  # into the cache
            start = time.perf_counter()
            dist, _ = knn_search(codes, query_words[sample], k, self.n_bits_, exclude[sample], 1)
            scan_time = (time.perf_counter() - start) * self.n_samples_fit_ / rows / _AUTO_SCAN_SAMPLE
            # About k rows / N of the final k nearest lie in the share: the distance at that
            # rank there estimates the k-th over all the codes (a lower rank, erring for MIH).
            kth = dist[:, max(1, k * rows // self.n_samples_fit_) - 1]
        else:  # k near N: two queries over all the codes
            by_scan(slice(0, 1), 1)  # the codes into the cache
            start = time.perf_counter()
            kth = by_scan(slice(0, 2), 1)[0][:, k - 1]
            scan_time = (time.perf_counter() - start) / 2
        if _mih_cannot_win(self._mih, kth, budget):
            parts.append(by_scan(slice(done, None), self._threads))
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        if not mih_compiled():  # load or compile it before timing it (outside by_mih: no overrun counted)
            mih_knn(self._index, self._mih, query_words[:1], k, exclude[:1], budget, 1)
        # MIH's cost varies from query to query: sample until it is clearly faster or
        # slower than the scan, or until the sample is large enough to choose on its mean.
        # The first MIH batch runs on caches the scan has just streamed the codes through, and
        # measured up to ~3x slower a query than the next ones (1M learned codes, k = 10):
        # it alone never sends the rest to the scan, and once there are more it is left out.
        scanned, batches = done, []  # (queries, seconds) of each MIH batch
        while done - scanned < min(n_queries - scanned, _AUTO_MAX_SAMPLE):
            start = time.perf_counter()
            parts.append(by_mih(slice(done, done + _AUTO_SAMPLE), 1))
            batches.append((min(done + _AUTO_SAMPLE, n_queries) - done, time.perf_counter() - start))
            done += batches[-1][0]
            ratio = _mean_time(batches) / scan_time
            # A query over its MIH budget costs that work and a scan: when most sampled ones
            # overran, the scan wins whatever a sub-millisecond timing said.
            if 2 * overrun > done - scanned or ratio < 0.7 or (ratio > 1.4 and len(batches) > 1):
                break
        if done < n_queries:
            mih_wins = _mean_time(batches) < scan_time and 2 * overrun <= done - scanned
            parts.append((by_mih if mih_wins else by_scan)(slice(done, None), self._threads))
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _numpy_knn(self, queries, k, exclude):
        dist = np.empty((len(queries), k), dtype=np.int64)
        ind = np.empty((len(queries), k), dtype=np.int64)
        for start in range(0, len(queries), _QUERY_CHUNK):
            stop = min(start + _QUERY_CHUNK, len(queries))
            d = self._chunk_distances(queries[start:stop], 0, self.n_samples_fit_).astype(np.int64)
            if exclude is not None:
                d[np.arange(stop - start), exclude[start:stop]] = self.n_bits_ + 1
            order = np.argsort(d, axis=1, kind="stable")[:, :k]
            ind[start:stop] = order
            dist[start:stop] = np.take_along_axis(d, order, axis=1)
        return dist, ind

    def _faiss_knn(self, queries, k, self_query):
        import faiss

        previous = faiss.omp_get_max_threads()  # the caller's setting, set back after
        faiss.omp_set_num_threads(self._threads)
        try:
            dist, ind = self._index.search(queries, k + int(self_query))
        finally:
            faiss.omp_set_num_threads(previous)
        dist, ind = dist.astype(np.int64), ind.astype(np.int64)
        if self_query:
            keep = ind != np.arange(len(queries))[:, None]
            # Drop the query's own row (or the last one, if faiss did not return it).
            keep[keep.all(axis=1), -1] = False
            dist = dist[keep].reshape(len(queries), k)
            ind = ind[keep].reshape(len(queries), k)
        # faiss's order within equal distances is unspecified: sort by (distance, index).
        order = np.lexsort((ind, dist), axis=1)
        return np.take_along_axis(dist, order, axis=1), np.take_along_axis(ind, order, axis=1)

    def _chunk_distances(self, queries, start, stop):
        """(n_queries, stop - start) distances, computed over database chunks."""
        out = np.empty((len(queries), stop - start), dtype=np.uint16)
        for s in range(start, stop, _DB_CHUNK):
            e = min(s + _DB_CHUNK, stop)
            out[:, s - start:e - start] = pairwise_hamming(queries, self._fit_X[s:e])
        return out

    # ------------------------------------------------------------------ radius
    def radius_neighbors(self, X=None, radius=None, return_distance=True, sort_results=False):
        """Find all codes within a Hamming radius (``distance <= radius``) of each query.

        Parameters
        ----------
        X : ndarray of shape (n_queries, n_bytes), dtype uint8, default=None
            Query codes; None queries the fitted codes, each leaving itself out.
        radius : int, default=None
            Defaults to the constructor's ``radius``.
        return_distance : bool, default=True
            Whether to return the distances.
        sort_results : bool, default=False
            Sort each query's results by distance (ties by index); otherwise by index.

        Returns
        -------
        neigh_dist : ndarray of shape (n_queries,), dtype object
            Arrays of distances (int64); only when ``return_distance``.
        neigh_ind : ndarray of shape (n_queries,), dtype object
            Arrays of database indices (int64).
        """
        queries, self_query = self._queries(X)
        r = check_scalar(self.radius if radius is None else radius, "radius", Integral, min_val=0)
        exclude = np.arange(len(queries), dtype=np.int64) if self_query else None
        if self.backend == "numba" and self._radius_by_mih(r):
            offsets, dist, ind = mih_radius(self._index, self._mih, pack_words(queries).T, r, self.n_bits_, exclude,
                                            sort_results, self._threads)
        elif self.backend == "numba":
            offsets, dist, ind = radius_search(self._index, pack_words(queries).T, r, self.n_bits_, exclude,
                                               sort_results, self._threads)
        else:
            offsets, dist, ind = self._numpy_radius(queries, r, exclude, sort_results)
        dists, inds = _split(dist, offsets), _split(ind, offsets)
        return (dists, inds) if return_distance else inds

    def _radius_by_mih(self, radius):
        """Whether radius queries go through the tables: always for "mih"; for "auto" when
        the buckets to probe, and the codes they hold if the codes were uniform, cost
        less than a scan."""
        if self._mih is None or self.algorithm == "brute":
            return False
        if self.algorithm == "mih":
            return True
        probes = probe_count(self._mih, radius)
        expected = probes * (1 + self.n_samples_fit_ / 2.0 ** self._mih.lengths.mean())
        return expected * SCAN_CODES_PER_WORK < self.n_samples_fit_

    def _numpy_radius(self, queries, radius, exclude, sort_results):
        """The reference: same output layout as :func:`radius_search`, from numpy distances."""
        rows, cols, dists = [], [], []
        for q0 in range(0, len(queries), _QUERY_CHUNK):
            q1 = min(q0 + _QUERY_CHUNK, len(queries))
            for s in range(0, self.n_samples_fit_, _DB_CHUNK):
                d = self._chunk_distances(queries[q0:q1], s, min(s + _DB_CHUNK, self.n_samples_fit_))
                r, c = np.nonzero(d <= radius)
                rows.append(r + q0), cols.append(c + s), dists.append(d[r, c])
        rows, cols, dists = (np.concatenate(a).astype(np.int64) if a else np.empty(0, np.int64)
                             for a in (rows, cols, dists))
        if exclude is not None:
            keep = cols != exclude[rows]
            rows, cols, dists = rows[keep], cols[keep], dists[keep]
        # By query, then by distance (when asked) or index: a stable sort keeps index order.
        order = np.lexsort((cols, dists, rows) if sort_results else (cols, rows))
        offsets = np.searchsorted(rows[order], np.arange(len(queries) + 1))
        return offsets, dists[order], cols[order]

    def __sklearn_tags__(self):
        # RadiusNeighborsMixin's tags read a ``metric`` parameter this estimator does not have.
        tags = BaseEstimator.__sklearn_tags__(self)
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        return tags


def _words(codes):
    """The scan's word-major layout: a view of 64-bit codes (no copy), else a copy."""
    if codes.shape[1] == 8 and codes.flags.c_contiguous:
        return np.asarray(codes).view("<u8").reshape(1, -1)
    return pack_words(codes)


def _split(values, offsets):
    """Object array of the segments ``values[offsets[q]:offsets[q + 1]]`` (as scikit-learn returns)."""
    out = np.empty(len(offsets) - 1, dtype=object)
    out[:] = np.split(values, offsets[1:-1])
    return out
