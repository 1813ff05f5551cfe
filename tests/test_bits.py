import numpy as np
import pytest

from sortedhash.bits import check_codes, n_bytes_for, pack_codes, unpack_codes


def test_pack_is_lsb_first_like_faiss():
    bits = np.zeros((1, 16), dtype=bool)
    bits[0, 0] = True  # bit 0 -> byte 0, value 1
    bits[0, 9] = True  # bit 9 -> byte 1, value 2
    np.testing.assert_array_equal(pack_codes(bits), [[1, 2]])


def test_pack_accepts_signs_and_round_trips():
    rng = np.random.default_rng(0)
    signs = rng.choice([-1.0, 1.0], size=(7, 20))
    codes = pack_codes(signs)
    assert codes.dtype == np.uint8 and codes.shape == (7, n_bytes_for(20)) == (7, 3)
    np.testing.assert_array_equal(unpack_codes(codes, 20), (signs > 0).astype(np.uint8))
    # Unused high bits of the last byte stay zero.
    assert np.all(codes[:, 2] < 16)


def test_unpack_rejects_too_many_bits():
    with pytest.raises(ValueError, match="n_bits=17"):
        unpack_codes(np.zeros((2, 2), np.uint8), 17)


@pytest.mark.parametrize(
    "codes, match",
    [
        (np.zeros((2, 2), np.int64), "dtype uint8"),
        (np.zeros((2, 2), np.float32), "dtype uint8"),
        (np.zeros(4, np.uint8), "2-D"),
        (np.zeros((0, 2), np.uint8), "empty"),
    ],
)
def test_check_codes_errors(codes, match):
    with pytest.raises((TypeError, ValueError), match=match):
        check_codes(codes)


def test_check_codes_width():
    with pytest.raises(ValueError, match="3 bytes wide .* 2 bytes"):
        check_codes(np.zeros((2, 3), np.uint8), n_bytes=2)


def test_pack_codes_refuses_codes_that_are_packed_already():
    codes = pack_codes(np.random.default_rng(0).integers(0, 2, (5, 64)))
    with pytest.raises(ValueError, match="packed already"):
        pack_codes(codes)
    # 0/1 uint8 bits (what np.unpackbits returns) are what it packs.
    np.testing.assert_array_equal(pack_codes(unpack_codes(codes)), codes)


def test_unpacked_bits_are_flagged_wherever_codes_are_taken():
    import warnings

    from sortedhash import HammingNeighbors
    from sortedhash.metrics import mean_average_precision

    rng = np.random.default_rng(1)
    packed = rng.integers(0, 256, (30, 8), dtype=np.uint8)
    bits = unpack_codes(packed)  # 64 bytes of 0/1 per row
    labels = rng.integers(0, 3, 30)
    for call in (lambda c: check_codes(c), lambda c: HammingNeighbors(n_neighbors=2).fit(c),
                 lambda c: mean_average_precision(c, labels, c, labels)):
        with pytest.warns(UserWarning, match="unpacked bits"):
            call(bits)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            call(packed)  # real packed codes: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_codes(np.zeros((4, 8), np.uint8))  # all-zero codes are codes, not bits
        check_codes(np.ones((4, 2), np.uint8))  # too short to tell
