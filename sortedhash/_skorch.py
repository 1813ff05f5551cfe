"""The skorch net behind :class:`~sortedhash.NSHTransformer`, and its callbacks."""

import math

import torch
from skorch import NeuralNet
from skorch.callbacks import Callback
from skorch.dataset import unpack_data
from skorch.utils import to_tensor

__all__ = ["NSHNet", "StopOnNonFiniteLoss", "EpochProgressBar"]


class NSHNet(NeuralNet):
    """A skorch ``NeuralNet`` whose training step sees two augmented views of each batch.

    The module returns ``(h, b, z)`` for one view; the criterion takes both views' outputs.
    There are no targets and no validation split.

    Parameters
    ----------
    augment : callable
        Maps a batch tensor to a random view of it; called twice per step. For input of
        shape (batch, n_views, ...) two distinct precomputed views are drawn per sample
        first, then ``augment`` (if any) is applied to each.
    """

    def __init__(self, module, *args, augment=None, **kwargs):
        super().__init__(module, *args, **kwargs)
        # skorch reserves Module attributes for its initialize_* methods; an augmentation
        # (often a Module, e.g. torchvision transforms) is held in a plain wrapper instead.
        self.augment = None if augment is None else _Augmentation(augment)

    # The module and the criterion are passed as instances, so the init parameters
    # ``module`` and ``criterion`` are the very objects skorch initialised and moved to the
    # device. skorch pickles only the initialised attributes (``module_``, ...) in a way that
    # maps CUDA tensors to the CPU on load; pickled as they are, the init parameters would
    # carry CUDA tensors that a machine without CUDA cannot read. They are stored as
    # references to the initialised attributes instead.
    _SHARED_WITH_INITIALIZED = ("module", "criterion")

    def __getstate__(self):
        state = super().__getstate__()
        for name in self._SHARED_WITH_INITIALIZED:
            value = self.__dict__.get(name)
            if value is not None and value is self.__dict__.get(name + "_"):
                state[name] = _SameAs(name + "_")
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        for name in self._SHARED_WITH_INITIALIZED:
            ref = self.__dict__.get(name)
            if isinstance(ref, _SameAs):
                self.__dict__[name] = self.__dict__[ref.attribute]

    def _views(self, X):
        if getattr(self, "multi_view_", False):
            n, n_views = X.shape[:2]
            rows = torch.arange(n, device=X.device)
            first = torch.randint(n_views, (n,), device=X.device)
            # A second index drawn from the other n_views - 1 views.
            second = (first + torch.randint(1, n_views, (n,), device=X.device)) % n_views
            a, b = X[rows, first], X[rows, second]
        else:
            a = b = X
        if self.augment is not None:
            a, b = self.augment(a), self.augment(b)
        return a, b

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        Xi, _ = unpack_data(batch)
        Xi = to_tensor(Xi, device=self.device)
        view_a, view_b = self._views(Xi)
        loss = self.criterion_(self.module_(view_a), self.module_(view_b))
        loss.backward()
        return {"loss": loss, "y_pred": None}

    def get_loss(self, y_pred, y_true, X=None, training=False):  # pragma: no cover - unused
        raise NotImplementedError("NSHNet computes its loss in train_step_single")


class _SameAs:
    """Pickled stand-in for an attribute that is the same object as ``attribute``."""

    def __init__(self, attribute):
        self.attribute = attribute


class _Augmentation:
    """Picklable holder of the augmentation callable."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, x):
        return self.fn(x)


class StopOnNonFiniteLoss(Callback):
    """Stop training with a clear error as soon as a batch loss is NaN or infinite."""

    def on_batch_end(self, net, batch=None, training=None, loss=None, **kwargs):
        if loss is not None and not math.isfinite(loss.item()):
            epoch = len(net.history)
            raise FloatingPointError(
                f"NSH training diverged: the loss became {loss.item()} at epoch {epoch}. "
                "Standardise the input features (e.g. StandardScaler), lower lr, or raise "
                "temperature; check the input for extreme values."
            )


class EpochProgressBar(Callback):
    """A one-line tqdm progress bar over epochs, showing the last training loss."""

    def __init__(self, desc="NSH"):
        self.desc = desc

    def on_train_begin(self, net, **kwargs):
        from tqdm.auto import tqdm

        self.bar_ = tqdm(total=net.max_epochs, desc=self.desc, unit="epoch", leave=False)

    def on_epoch_end(self, net, **kwargs):
        self.bar_.update(1)
        self.bar_.set_postfix(loss=f"{net.history[-1, 'train_loss']:.4f}")

    def on_train_end(self, net, **kwargs):
        self.bar_.close()
