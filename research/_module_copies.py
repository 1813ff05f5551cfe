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


def load_copies(parser, paths):
    """``load_copy`` of each of ``paths`` (the ``--kernels`` argument of ``parser``), refusing
    two files of one name: the tools key their results by it, and two alike would merge."""
    names = [pathlib.Path(path).stem for path in paths]
    if len(set(names)) < len(names):
        parser.error(f"--kernels: give each copy its own file name, got {names}")
    return [load_copy(path) for path in paths]
