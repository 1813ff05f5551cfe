import json
import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

from sortedhash.neighbors._threads import numba_threads, run_on_threads

# numba starts its thread pool once a process, so what that start does to other libraries'
# settings is seen in a fresh one. NUMBA_NUM_THREADS=3 makes a reset visible on any machine.
_FIRST_SEARCH = textwrap.dedent("""
    import json
    import numpy as np
    import torch
    {imports}
    from sortedhash import HammingNeighbors

    {set_threads}
    torch.set_num_threads(1)
    codes = np.random.default_rng(0).integers(0, 256, (500, 8), dtype=np.uint8)
    HammingNeighbors(n_neighbors=5, algorithm="brute").fit(codes).kneighbors(codes[:40])
    # faiss is read first: torch.get_num_threads() applies torch's own setting to the runtime
    # it shares with faiss, which would hide a reset.
    print(json.dumps({{{report}"torch": torch.get_num_threads()}}))
""")


def _first_search(imports, set_threads, report):
    script = _FIRST_SEARCH.format(imports=imports, set_threads=set_threads, report=report)
    env = {**os.environ, "NUMBA_NUM_THREADS": "3"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_first_search_keeps_faiss_threads_when_faiss_comes_after_torch():
    # The case that was reset: faiss imported after torch (as after `import sortedhash`) binds
    # its OpenMP calls to torch's runtime, whose thread count numba's start set to 3.
    pytest.importorskip("faiss")
    threads = _first_search(imports="import faiss", set_threads="faiss.omp_set_num_threads(1)",
                            report='"faiss": faiss.omp_get_max_threads(), ')
    assert threads == {"torch": 1, "faiss": 1}


def test_run_on_threads_restores_numba_setting():
    seen = []

    def kernel(out):
        seen.append(numba.get_num_threads())
        out[0] = 1

    before = numba_threads()
    out = np.zeros(1)
    run_on_threads(1, kernel, out)
    assert seen == [1] and out[0] == 1
    assert numba_threads() == before


def test_run_on_threads_restores_numba_setting_when_the_kernel_raises():
    before = numba_threads()

    def kernel():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run_on_threads(1, kernel)
    assert numba_threads() == before
