import numpy as np
import pytest

from sortedhash import HammingNeighbors, pack_codes
from sortedhash.export import from_bit_strings, to_bit_strings, to_milvus_binary


def _codes(n, n_bytes, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, 256, (8, n_bytes), dtype=np.uint8)
    flips = np.packbits(rng.random((n, 8 * n_bytes)) < 0.1, axis=1, bitorder="little")
    return centres[rng.integers(0, 8, n)] ^ flips  # near-duplicates: many ties


def test_bit_strings_put_bit_j_at_character_j():
    bits = np.zeros((2, 12), dtype=np.uint8)
    bits[0, [0, 9]] = 1
    bits[1, 11] = 1
    assert to_bit_strings(pack_codes(bits), n_bits=12) == ["100000000100", "000000000001"]
    assert to_bit_strings(pack_codes(bits)) == ["1000000001000000", "0000000000010000"]


def test_bit_strings_round_trip():
    codes = _codes(50, 5)
    np.testing.assert_array_equal(from_bit_strings(to_bit_strings(codes)), codes)
    np.testing.assert_array_equal(from_bit_strings(to_bit_strings(codes, n_bits=37), n_bytes=5), codes & np.array(
        [255, 255, 255, 255, 31], dtype=np.uint8))


def test_bad_bit_strings_are_named():
    with pytest.raises(ValueError, match="different lengths"):
        from_bit_strings(["0101", "01"])
    with pytest.raises(ValueError, match="'0' and '1'"):
        from_bit_strings(["0121"])
    with pytest.raises(ValueError, match="empty"):
        from_bit_strings([])
    with pytest.raises(TypeError, match="uint8"):
        to_bit_strings(np.zeros((2, 8), dtype=np.float32))


def test_milvus_vectors_put_dimension_j_at_bit_j():
    bits = np.zeros((1, 16), dtype=np.uint8)
    bits[0, [0, 10]] = 1
    (vector,) = to_milvus_binary(pack_codes(bits))
    unpacked = np.unpackbits(np.frombuffer(vector, dtype=np.uint8))  # Milvus's order: MSB first
    np.testing.assert_array_equal(unpacked, bits[0])


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    """An embedded PostgreSQL 16 (pgserver), stopped after the module."""
    import pgserver
    import psycopg

    server = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="stop")
    try:
        with psycopg.connect(server.get_uri(), autocommit=True) as connection:
            yield connection
    finally:
        server.cleanup()


@pytest.mark.parametrize("n_bits", [64, 256])
def test_postgres_orders_by_hamming_distance_as_hamming_neighbors(postgres, n_bits):
    codes = _codes(2000, n_bits // 8, seed=n_bits)
    queries = np.concatenate([codes[:5], _codes(15, n_bits // 8, seed=n_bits + 1)])
    table = f"codes_{n_bits}"
    with postgres.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, code bit({n_bits}) NOT NULL)")
        with cursor.copy(f"COPY {table} (id, code) FROM STDIN") as copy:
            for row in enumerate(to_bit_strings(codes)):
                copy.write_row(row)
        index = HammingNeighbors().fit(codes)
        want_dist, want_ind = index.kneighbors(queries, 10)
        for q, query in enumerate(to_bit_strings(queries)):
            cursor.execute(f"SELECT id, bit_count(code # %s::bit({n_bits})) AS d FROM {table} "
                           "ORDER BY d, id LIMIT 10", (query,))
            got = np.array(cursor.fetchall())
            np.testing.assert_array_equal(got[:, 0], want_ind[q])
            np.testing.assert_array_equal(got[:, 1], want_dist[q])
        radius = n_bits // 8
        want = index.radius_neighbors(queries, radius, return_distance=False)
        for q, query in enumerate(to_bit_strings(queries)):
            cursor.execute(f"SELECT id FROM {table} WHERE bit_count(code # %s::bit({n_bits})) <= %s ORDER BY id",
                           (query, radius))
            np.testing.assert_array_equal([r[0] for r in cursor.fetchall()], want[q])
        cursor.execute(f"SELECT code::text FROM {table} ORDER BY id")
        np.testing.assert_array_equal(from_bit_strings(r[0] for r in cursor.fetchall()), codes)
