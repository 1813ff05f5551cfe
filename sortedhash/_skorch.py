"""The skorch net behind :class:`~sortedhash.NSHTransformer`, and its callbacks."""

import inspect
import math

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import Callback
from skorch.dataset import unpack_data
from skorch.utils import to_tensor

from .views import TrainingViews

__all__ = ["NSHNet", "StopOnNonFiniteLoss", "EpochProgressBar", "ValidNeighborRecall"]


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

    def _view_loss(self, batch):
        """The criterion on two views of a batch (float64 input is cast to the network's float32).

        A criterion whose ``forward`` takes ``inputs`` also gets the clean batch (see
        :meth:`TrainingViews.clean`), e.g. to keep the input's neighbours.
        """
        Xi, _ = unpack_data(batch)
        Xi = to_tensor(Xi, device=self.device)
        if Xi.dtype == torch.float64:
            Xi = Xi.float()
        view_a, view_b = self.views(Xi)
        extra = {"inputs": self.views.clean(Xi)} if _takes_inputs(self.criterion_) else {}
        return self.criterion_(self.module_(view_a), self.module_(view_b), **extra)

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        loss = self._view_loss(batch)
        loss.backward()
        return {"loss": loss, "y_pred": None}

    def validation_step(self, batch, **fit_params):
        """The training loss on a held-out batch (random views, no gradient)."""
        self._set_training(False)
        with torch.no_grad():
            loss = self._view_loss(batch)
        return {"loss": loss, "y_pred": None}

    def get_loss(self, y_pred, y_true, X=None, training=False):
        raise NotImplementedError("NSHNet computes its loss in train_step_single and validation_step")


def _takes_inputs(criterion):
    return "inputs" in inspect.signature(criterion.forward).parameters


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


class ValidNeighborRecall(Callback):
    """Records ``valid_neighbor_recall``: how well the codes keep the input's neighbours.

    For each of (at most ``max_samples``) held-out samples, the share of its ``k`` nearest
    held-out samples by cosine similarity of the network's input that are among its ``k``
    nearest by Hamming distance of the codes (ties by index). A label-free score of the
    codes; with several views per sample, the first view is used. O(max_samples^2) an epoch.
    """

    def __init__(self, k=10, max_samples=2000):
        self.k = k
        self.max_samples = max_samples

    def on_train_begin(self, net, X=None, **kwargs):
        self.float_neighbors_ = None

    def __getstate__(self):
        # The held-out rows and their neighbours are a cache of one fit: not worth pickling.
        state = self.__dict__.copy()
        state.pop("inputs_", None)
        state["float_neighbors_"] = None
        return state

    def on_epoch_end(self, net, dataset_valid=None, **kwargs):
        if dataset_valid is None or len(dataset_valid) <= self.k:
            return
        if self.float_neighbors_ is None:  # the held-out split is the same every epoch
            rows = [dataset_valid[i][0] for i in range(min(len(dataset_valid), self.max_samples))]
            x = torch.as_tensor(np.stack(rows), dtype=torch.float32)
            self.inputs_ = net.views.clean(x)
            self.float_neighbors_ = _top_k(torch.nn.functional.normalize(self.inputs_.flatten(1), dim=1), self.k)
        with torch.no_grad():
            was_training = net.module_.training
            net.module_.eval()
            codes = net.module_.encode(self.inputs_.to(net.device)).float().cpu() * 2 - 1
            net.module_.train(was_training)
        found = (_top_k(codes, self.k)[:, :, None] == self.float_neighbors_[:, None, :]).any(-1)
        net.history.record("valid_neighbor_recall", found.float().mean().item())


def _top_k(vectors, k):
    """Each row's k most similar other rows by inner product, ties to the lower index."""
    similarity = vectors @ vectors.T
    similarity.fill_diagonal_(-float("inf"))
    return torch.sort(similarity, dim=1, descending=True, stable=True).indices[:, :k]


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
