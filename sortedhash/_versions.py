"""Library versions recorded with fitted models, and the warning for a mismatch on load."""

import warnings

__all__ = ["InconsistentVersionWarning", "current_versions", "check_versions"]


class InconsistentVersionWarning(UserWarning):
    """A model is loaded under other library versions than it was fitted with.

    Like :class:`sklearn.exceptions.InconsistentVersionWarning`, it carries what was
    recorded and what is installed, so the caller can decide to refit.
    """

    def __init__(self, *, recorded, installed):
        self.recorded = dict(recorded)
        self.installed = dict(installed)
        diff = ", ".join(
            f"{name} {recorded[name]} -> {installed.get(name)}"
            for name in sorted(recorded) if recorded[name] != installed.get(name)
        )
        super().__init__(
            f"This model was fitted with other library versions ({diff}). It may give other "
            "codes or fail to load; refit it, or pin the versions it was fitted with."
        )


def current_versions():
    """Versions of sortedhash, scikit-learn and torch installed now."""
    import sklearn
    import torch

    from . import __version__

    return {"sortedhash": __version__, "scikit-learn": sklearn.__version__, "torch": torch.__version__}


def check_versions(recorded):
    """Warn with :class:`InconsistentVersionWarning` when ``recorded`` differs from now."""
    if not recorded:
        return
    installed = current_versions()
    if any(recorded.get(name) != installed.get(name) for name in recorded):
        warnings.warn(InconsistentVersionWarning(recorded=recorded, installed=installed), stacklevel=3)


class VersionedMixin:
    """Records library versions at fit (``_record_versions``) and checks them on unpickling."""

    def _record_versions(self):
        self._sortedhash_versions = current_versions()

    def __setstate__(self, state):
        # BaseEstimator.__setstate__ already checks the scikit-learn version of pickles.
        super().__setstate__(state)
        check_versions(state.get("_sortedhash_versions"))
