import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_script(folder, name):
    """A script of ``research/`` or ``benchmarks/`` (not installed) as a module."""
    spec = importlib.util.spec_from_file_location(f"{folder}_{name}", ROOT / folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
