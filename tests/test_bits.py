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
