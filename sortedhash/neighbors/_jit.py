"""numba's ``njit``, caching the compiled search kernels in a per-user directory.

Compiling the kernels takes seconds at the first search of every process; a service or a
command-line tool would pay that at each start. They are cached on disk, in the first of:

- ``SORTEDHASH_CACHE_DIR``: a directory; empty, ``0``, ``off`` or ``none`` switches the
  cache off;
- ``NUMBA_CACHE_DIR``: numba's own setting, used as it is;
- ``$XDG_CACHE_HOME/sortedhash`` (``~/.cache/sortedhash`` when ``XDG_CACHE_HOME`` is unset).

Never inside the installed package (numba's default, next to the source), and nowhere when
the directory cannot be written. The choice is made when the kernels' modules are
imported.

numba checks a cached function against its own file only, while the kernels also compile
code from the modules they import (``_lanes``): the two sortedhash locations get a
subdirectory named after a digest of this package's sources, so that a change to any of
them compiles afresh.
"""

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

import numba
from numba.core import config

__all__ = ["CACHE_DIR", "njit"]

_OFF = {"", "0", "off", "none", "false"}


def _sources_digest():
    """A short digest of the kernels' sources (this package's modules)."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _cache_dir():
    """The directory to cache in, or None for no cache (numba's own: NUMBA_CACHE_DIR)."""
    if "SORTEDHASH_CACHE_DIR" in os.environ:
        value = os.environ["SORTEDHASH_CACHE_DIR"].strip()
        return None if value.lower() in _OFF else Path(value).expanduser() / _sources_digest()
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sortedhash" / _sources_digest()


def _writable(path):
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError:
        return False
    return True


CACHE_DIR = _cache_dir()
if CACHE_DIR is not None and not _writable(CACHE_DIR):
    CACHE_DIR = None  # numba would fall back to the package's __pycache__: do not cache instead


@contextlib.contextmanager
def _numba_cache_dir(path):
    # numba resolves a cached function's directory when it is decorated, from this setting.
    previous = config.CACHE_DIR
    config.CACHE_DIR = str(path)
    try:
        yield
    finally:
        config.CACHE_DIR = previous


def njit(**options):
    """``numba.njit(**options)``, cached in :data:`CACHE_DIR` when there is one."""

    def decorate(function):
        if CACHE_DIR is None:
            return numba.njit(**options)(function)
        with _numba_cache_dir(CACHE_DIR):
            return numba.njit(cache=True, **options)(function)

    return decorate
