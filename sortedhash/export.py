"""Packed codes in the layouts serving engines expect: PostgreSQL ``bit(n)``, Milvus
``BINARY_VECTOR``.

Hamming distance does not depend on how bits are ordered as long as the database and the
queries use the same layout, so any of these gives the neighbours
:class:`~sortedhash.HammingNeighbors` gives (ties by id, when the engine orders them so).
These functions keep bit ``j`` of a sortedhash code at position ``j`` of the engine's
vector, so single bits keep their meaning too.

PostgreSQL (14 and later) orders a table exactly by Hamming distance with
``ORDER BY bit_count(code # query), id``; with pgvector 0.7 or later, ``code <~> query``
is the same distance and an HNSW index (``USING hnsw (code bit_hamming_ops)``) makes it
approximate and fast. See the "Scaling out" page of the docs.
"""

import numpy as np

from .bits import check_codes, unpack_codes

__all__ = ["from_bit_strings", "to_bit_strings", "to_milvus_binary"]


def to_bit_strings(codes, *, n_bits=None):
    """Codes as strings of '0' and '1', bit ``j`` at character ``j``: PostgreSQL ``bit(n)``
    (and pgvector's) text input.

    Parameters
    ----------
    codes : ndarray of shape (n_samples, n_bytes), dtype uint8
        Packed codes.
    n_bits : int, default=None
        Bits to write (the code length of a hasher whose ``n_bits`` is not a multiple
        of 8); defaults to ``8 * n_bytes``.

    Returns
    -------
    strings : list of str
        One string of ``n_bits`` characters per code.
    """
    bits = unpack_codes(codes, n_bits=n_bits)
    text = (bits + ord("0")).view("S1").reshape(bits.shape)
    return [row.tobytes().decode("ascii") for row in text]


def from_bit_strings(strings, *, n_bytes=None):
    """Packed codes from strings of '0' and '1' (what PostgreSQL returns for ``bit(n)``).

    Parameters
    ----------
    strings : sequence of str
        Equal-length strings, bit ``j`` at character ``j``.
    n_bytes : int, default=None
        Bytes per code; defaults to ``ceil(len / 8)``.

    Returns
    -------
    codes : ndarray of shape (n_samples, n_bytes), dtype uint8
    """
    strings = list(strings)
    if not strings:
        raise ValueError("strings is empty")
    lengths = {len(s) for s in strings}
    if len(lengths) != 1:
        raise ValueError(f"strings have different lengths {sorted(lengths)[:5]}: one code length is expected")
    raw = np.frombuffer("".join(strings).encode("ascii"), dtype=np.uint8).reshape(len(strings), -1)
    if not np.isin(raw, (ord("0"), ord("1"))).all():
        raise ValueError("strings must hold only the characters '0' and '1'")
    codes = np.packbits(raw == ord("1"), axis=1, bitorder="little")
    if n_bytes is not None:
        if n_bytes < codes.shape[1]:
            raise ValueError(f"n_bytes={n_bytes} is too small for codes of {raw.shape[1]} bits")
        codes = np.pad(codes, ((0, 0), (0, n_bytes - codes.shape[1])))
    return codes


def to_milvus_binary(codes):
    """Codes as Milvus ``BINARY_VECTOR`` values (dimension ``8 * n_bytes``, metric ``HAMMING``).

    Milvus reads dimension ``i`` from bit ``7 - i % 8`` (the most significant first) of
    byte ``i // 8``, NumPy's default ``packbits`` order; sortedhash packs the least
    significant bit first. The bits of each byte are reversed so that dimension ``j`` is
    bit ``j`` of the code (distances would be the same either way).

    Parameters
    ----------
    codes : ndarray of shape (n_samples, n_bytes), dtype uint8
        Packed codes.

    Returns
    -------
    vectors : list of bytes
        One ``bytes`` of ``n_bytes`` per code, as ``MilvusClient.insert`` and ``search``
        take them.
    """
    codes = check_codes(codes, name="codes")
    msb_first = np.packbits(np.unpackbits(codes, axis=1, bitorder="little"), axis=1, bitorder="big")
    return [row.tobytes() for row in msb_first]
