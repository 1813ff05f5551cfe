import numpy as np
import pytest

from sortedhash import unpack_codes
from sortedhash.neighbors._asymmetric import best_by_asymmetric_score


def _reference(codes, scores, candidates, m):
    """Each query's m candidates with the highest inner product of its scores and their +-1
    codes, ties by lower row, as sets."""
    signs = 2.0 * unpack_codes(codes, scores.shape[1]) - 1
    kept = []
    for q, rows in enumerate(candidates):
        value = signs[rows] @ scores[q]
        kept.append(set(rows[np.lexsort((rows, -value))[:m]]))
    return kept


@pytest.mark.parametrize("n_bits", [8, 45, 64, 384])
@pytest.mark.parametrize("m", [1, 17, 120])
def test_keeps_the_best_candidates_by_the_scores_against_the_signs(n_bits, m):
    rng = np.random.default_rng(n_bits)
    codes = rng.integers(0, 256, (600, -(-n_bits // 8)), dtype=np.uint8)
    codes[300:330] = codes[:30]  # duplicated codes: equal scores, the lower rows kept
    scores = rng.standard_normal((25, n_bits))
    candidates = np.stack([rng.permutation(600)[:120] for _ in scores])
    candidates[:, :2] = [305, 5]  # a tie inside every query's candidates
    kept = best_by_asymmetric_score(codes, scores, candidates, m, n_threads=1)
    assert kept.shape == (25, m)
    assert [set(row) for row in kept] == _reference(codes, scores, candidates, m)
    np.testing.assert_array_equal(best_by_asymmetric_score(codes, scores, candidates, m, n_threads=2), kept)


def test_ties_keep_the_lower_rows_and_scores_past_the_bits_count_zero():
    codes = np.zeros((10, 2), dtype=np.uint8)  # every code the same: every score ties
    scores = np.ones((1, 12))  # 12 bits in 2 bytes: the 4 padding bits carry no score
    candidates = np.array([[9, 3, 7, 1, 5]])
    np.testing.assert_array_equal(np.sort(best_by_asymmetric_score(codes, scores, candidates, 3)[0]), [1, 3, 5])
    codes[7, 1] = 0b11110000  # set padding bits only: still a tie
    np.testing.assert_array_equal(np.sort(best_by_asymmetric_score(codes, scores, candidates, 3)[0]), [1, 3, 5])
    codes[9, 0] = 1  # one bit with a positive score: row 9 first
    np.testing.assert_array_equal(np.sort(best_by_asymmetric_score(codes, scores, candidates, 2)[0]), [1, 9])


def test_reads_read_only_codes():
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 256, (200, 6), dtype=np.uint8)
    frozen = codes.copy()
    frozen.flags.writeable = False
    scores = rng.standard_normal((4, 48)).astype(np.float32)
    candidates = np.tile(np.arange(200), (4, 1))
    np.testing.assert_array_equal(best_by_asymmetric_score(frozen, scores, candidates, 9),
                                  best_by_asymmetric_score(codes, scores, candidates, 9))
