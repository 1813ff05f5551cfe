"""Packing and unpacking binary codes.

Every sortedhash transformer returns codes packed eight bits to a byte, ``uint8``,
shape ``(n_samples, ceil(n_bits / 8))``. Bit ``j`` of a code lives in byte ``j // 8``
at position ``j % 8`` counted from the least significant bit. This is the order of
``np.packbits(..., bitorder="little")`` and of faiss's binary indexes, so codes can be
handed to faiss unchanged.
"""

import warnings

import numpy as np

__all__ = ["pack_codes", "unpack_codes", "n_bytes_for", "check_codes", "pairwise_hamming"]


def n_bytes_for(n_bits):
    """Number of bytes of one packed code of ``n_bits`` bits."""
    return (int(n_bits) + 7) // 8


def pack_codes(bits):
    """Pack binary codes into bytes (least significant bit first).

    Parameters
    ----------
    bits : array-like of shape (n_samples, n_bits)
        Codes as booleans or 0/1 integers. Signs are accepted too: an entry is set when it
        is strictly positive, so ``{-1, +1}`` codes pack as expected.

    Returns
    -------
    codes : ndarray of shape (n_samples, ceil(n_bits / 8)), dtype uint8
        Packed codes; unused high bits of the last byte are zero.

    Raises
    ------
    ValueError
        For ``uint8`` input holding values above 1: those are packed codes already.
    """
    bits = np.asarray(bits)
    if bits.ndim != 2:
        raise ValueError(f"bits must be 2-D (n_samples, n_bits), got shape {bits.shape}")
    if bits.dtype == np.uint8 and bits.size and bits.max() > 1:
        raise ValueError(
            f"bits holds uint8 values up to {bits.max()}, not one 0/1 value per bit: these look like "
            "codes that are packed already (pack_codes would pack their bytes again)"
        )
    if bits.dtype != np.bool_:
        bits = bits > 0
    return np.packbits(bits, axis=1, bitorder="little")


def unpack_codes(codes, n_bits=None):
    """Unpack packed codes into a 0/1 ``uint8`` matrix.

    Parameters
    ----------
    codes : ndarray of shape (n_samples, n_bytes), dtype uint8
        Packed codes as returned by a sortedhash transformer.
    n_bits : int, default=None
        Number of bits to keep; defaults to ``8 * n_bytes``.

    Returns
    -------
    bits : ndarray of shape (n_samples, n_bits), dtype uint8
    """
    codes = check_codes(codes, name="codes")
    if n_bits is None:
        n_bits = 8 * codes.shape[1]
    elif not 0 < n_bits <= 8 * codes.shape[1]:
        raise ValueError(
            f"n_bits={n_bits} does not fit codes of {codes.shape[1]} bytes "
            f"(at most {8 * codes.shape[1]} bits)"
        )
    return np.unpackbits(codes, axis=1, count=int(n_bits), bitorder="little")


def check_codes(codes, *, name="codes", n_bytes=None, allow_empty=False):
    """Check that ``codes`` is a 2-D ``uint8`` array of packed codes.

    Unlike feature input, codes are never converted: a float or int array here almost
    always means unpacked bits or the wrong array, so it is refused with a clear error.

    Parameters
    ----------
    codes : ndarray
        Candidate packed codes.
    name : str, default="codes"
        Name used in error messages.
    n_bytes : int, default=None
        Required code width in bytes, if known (e.g. the width seen at fit).
    allow_empty : bool, default=False
        Whether zero rows are accepted.

    Returns
    -------
    codes : ndarray of dtype uint8, C-contiguous
    """
    if hasattr(codes, "toarray") or not hasattr(codes, "dtype"):
        if hasattr(codes, "toarray"):
            raise TypeError(f"{name} must be a dense uint8 ndarray of packed codes, got a sparse matrix")
        codes = np.asarray(codes)
    if codes.dtype != np.uint8:
        raise TypeError(
            f"{name} must be packed binary codes of dtype uint8 (as returned by a sortedhash "
            f"transformer's transform, or pack_codes), got dtype {codes.dtype}"
        )
    if codes.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_bytes), got shape {codes.shape}")
    if codes.shape[1] == 0:
        raise ValueError(f"{name} has zero bytes per code")
    if not allow_empty and codes.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 codes)")
    if n_bytes is not None and codes.shape[1] != n_bytes:
        raise ValueError(
            f"{name} are {codes.shape[1]} bytes wide ({8 * codes.shape[1]} bits) but "
            f"{n_bytes} bytes ({8 * n_bytes} bits) were expected"
        )
    _warn_if_unpacked(codes, name)
    return np.ascontiguousarray(codes)


# Rows looked at for the unpacked-bits warning: enough to be sure, cheap at any size.
_UNPACKED_SAMPLE = 1024


def _warn_if_unpacked(codes, name):
    """Warn when codes look like unpacked bits (what ``np.unpackbits`` returns).

    Every byte of a packed code being 0 or 1 has probability (2/256) per byte; over 8 or
    more bytes of every sampled row it is all but impossible for real codes.
    """
    sample = codes[:_UNPACKED_SAMPLE]
    if codes.shape[1] >= 8 and sample.size and sample.max() == 1:
        warnings.warn(
            f"every byte of {name} is 0 or 1: these look like unpacked bits ({8 * codes.shape[1]} bits "
            f"would be read for each of the {codes.shape[1]} values). Pack them with "
            "sortedhash.pack_codes first.",
            UserWarning,
            stacklevel=3,
        )


def pairwise_hamming(a, b):
    """Dense Hamming distance matrix between two sets of packed codes, ``uint16``.

    XOR + popcount byte by byte: simple and exact, for metrics and the numpy reference
    search. Inputs are assumed checked (``check_codes``) and of equal width; the compiled
    search in :mod:`sortedhash.neighbors` is the fast path.
    """
    out = np.zeros((a.shape[0], b.shape[0]), dtype=np.uint16)
    for j in range(a.shape[1]):
        out += np.bitwise_count(a[:, j, None] ^ b[None, :, j])
    return out
