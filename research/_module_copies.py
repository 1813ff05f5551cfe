"""Load a copy of a ``sortedhash.neighbors`` module as a module of its own, for the A/B tools.

Named inside ``sortedhash.neighbors`` so that the copy's relative imports (``._jit``,
``._kernels``) resolve; the copy's file name tells the copies apart in the tools' output.
"""

import importlib.util
import pathlib


def load_copy(path):
    """(file stem, module) of the Python file at ``path``."""
    import sortedhash.neighbors  # noqa: F401  (the package each copy's relative imports resolve in)

    name = pathlib.Path(path).stem
    spec = importlib.util.spec_from_file_location(f"sortedhash.neighbors._ab_{name}", str(path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return name, module
