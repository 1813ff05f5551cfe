"""The skorch net behind :class:`~sortedhash.NSHTransformer`, and its callbacks."""

import math

from skorch import NeuralNet
from skorch.callbacks import Callback
from skorch.dataset import unpack_data
from skorch.utils import to_tensor

from .views import TrainingViews

__all__ = ["NSHNet", "StopOnNonFiniteLoss", "EpochProgressBar"]


class NSHNet(NeuralNet):
    """A skorch ``NeuralNet`` whose training step contrasts two random views of each batch.

    The module returns ``(h, b, z)`` for one view; the criterion takes both views' outputs.
    There are no targets.

    Parameters
    ----------
    module, criterion
        As for :class:`skorch.NeuralNet`.
    views : TrainingViews, default=None
        Draws the two views of a batch (:class:`sortedhash.views.TrainingViews`). None
        contrasts the batch with itself, un-augmented.
    **kwargs
        Other :class:`skorch.NeuralNet` arguments.
    """

    # skorch pickles these attributes (every name they prefix) with torch's device
    # mapping, so a model trained on CUDA loads on a machine without it. The init
    # parameters ``module`` and ``criterion`` are the very objects skorch initialised and
    # moved to the device (they are passed as instances), and an augmentation may hold
    # tensors: pickled plainly, their CUDA storage could not be read without CUDA.
    cuda_dependent_attributes_ = ["module", "criterion", "views"]

    def __init__(self, module, *args, views=None, **kwargs):
        super().__init__(module, *args, **kwargs)
        self.views = TrainingViews() if views is None else views

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        Xi, _ = unpack_data(batch)
        view_a, view_b = self.views(to_tensor(Xi, device=self.device))
        loss = self.criterion_(self.module_(view_a), self.module_(view_b))
        loss.backward()
        return {"loss": loss, "y_pred": None}

    def get_loss(self, y_pred, y_true, X=None, training=False):  # pragma: no cover - unused
        raise NotImplementedError("NSHNet computes its loss in train_step_single")


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
