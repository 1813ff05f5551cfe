"""NSHTransformer: Naturally-Sorted Hashing as a scikit-learn transformer.

The estimator is a thin shell: it validates parameters and input, then builds its parts
through hooks that a subclass may override, and trains them with skorch:

- :meth:`NSHTransformer._make_views`: the :class:`~sortedhash.views.TrainingViews` that
  prepare the training array and draw two views of each batch;
- :meth:`NSHTransformer._make_module`: the hashing network;
- :meth:`NSHTransformer._make_criterion`: the loss (:class:`~sortedhash.nn.NSHLoss`);
- :attr:`NSHTransformer.net_class` and :meth:`NSHTransformer._make_net`: the skorch net.
"""

import contextlib
import copy
import math
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from skorch.callbacks import EarlyStopping
from skorch.dataset import ValidSplit
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ._device import resolve_device
from ._codes_out import PackedCodesOutMixin
from ._safe_state import SafeStateMixin
from ._skorch import EpochProgressBar, NSHNet, StopOnNonFiniteLoss, ValidNeighborRecall
from ._versions import VersionedMixin
from .bits import n_bytes_for
from .nn import FeatureNoise, HashingNetwork, MLPBackbone, NSHLoss, make_sorter
from .views import TrainingViews

__all__ = ["NSHTransformer"]

# Rows encoded per forward pass in transform: bounds memory whatever the input size.
_ENCODE_BATCH = 4096
_MAX_SEED = np.iinfo(np.int32).max


def _positive(kind=Real):
    return [Interval(kind, 0, None, closed="neither")]


def _non_negative(kind=Real):
    return [Interval(kind, 0, None, closed="left")]


class NSHTransformer(SafeStateMixin, VersionedMixin, PackedCodesOutMixin, TransformerMixin,
                     BaseEstimator):
    """Naturally-Sorted Hashing: learn binary codes by sorting in-batch Hamming distances.

    Each training step draws two random views of a batch, encodes both into binary codes
    ``B`` (sign of a tanh hash head, straight-through gradient) and unit latent vectors
    ``Z``, sorts every anchor's candidates by Hamming similarity with a differentiable
    sorter, gathers the latent vectors in that order and applies SortedNCE: the first
    ``n_positives`` positions are positives, the rest negatives. Gradients reach the hash
    head through the sorter (Yu et al., "Learning to Hash Naturally Sorts", IJCAI 2022).
    A code-level NT-Xent term (``code_nce_weight``) is added to SortedNCE.

    ``transform`` returns packed codes: ``uint8`` of shape ``(n_samples, ceil(n_bits / 8))``,
    bit ``j`` in byte ``j // 8`` at position ``j % 8`` from the least significant bit (the
    order of ``np.packbits(..., bitorder="little")`` and faiss).

    Parameters
    ----------
    n_bits : int, default=64
        Code length.
    sorter : {"torchsort", "softsort", "none"}, default="torchsort"
        Differentiable sorter: torchsort's soft sort anchoring a SoftSort kernel, pure
        PyTorch SoftSort, or no sorting (the anchor's other view first: with
        ``n_positives=1`` SortedNCE is then plain InfoNCE). Both sorters give candidates
        tied in Hamming distance the mean gradient of their sorted positions, so training
        depends on no tie order; at ``regularization_strength`` up to 1.0 they compute the
        same loss and gradient, through the same code (no sort is run: each sorted list is
        one value and one count a Hamming level).
    n_positives : int or "auto", default="auto"
        ``m``: leading sorted positions treated as positives by SortedNCE. "auto" is 4
        below 32 bits and 8 from 32 bits on (short codes take few distinct Hamming
        values). Must be smaller than the batch.
    temperature : float, default=0.2
        SortedNCE temperature ``tau``.
    sort_temperature : float, default=1.0
        Sorter kernel temperature in Hamming steps (``tau_s = sort_temperature / n_bits``);
        smaller is closer to a hard sort.
    regularization_strength : float, default=1.0
        torchsort's l2 regularisation of the soft sort (``sorter="torchsort"`` only);
        smaller is harder. Up to 1.0 its sorted values equal the hard sort (similarities lie
        in [0, 1]); gaps of one Hamming step are smoothed from about ``n_bits`` on.
    sorted_weight : float, default=0.1
        Weight of SortedNCE. 0 skips the sort and leaves the latent head untrained: plain
        contrastive hashing, about 0.7 of the training time.
    code_nce_weight : float, default=1.0
        Weight of an NT-Xent term between the two views' codes. The paper's NSH is
        ``sorted_weight=1.0, code_nce_weight=0.0`` (see the user guide).
    code_temperature : float, default=0.5
        Temperature of that term.
    neighbor_weight : float, default=0.0
        Weight of a term that makes the codes keep the input's nearest neighbours: for each
        anchor, the softmax of the codes' similarities over the batch is matched to the
        softmax of the clean inputs' cosine similarities (KL divergence). Use it when the
        codes serve to search embeddings (the truth is the float ranking, not a class):
        it trades a little class mAP for neighbour recall (the user guide's page "Codes for
        embedding search"). Costs O(batch_size^2) a step, like the other terms.
    similarity_weight : float, default=0.0
        Weight of a term that makes the codes keep the inputs' pairwise similarities: the
        squared gap between the codes' cosine similarity (``1 - 2 Hamming / n_bits``) and
        the clean inputs' cosine similarity over every pair of the batch, relative to the
        variance of the latter (:func:`sortedhash.nn.losses.similarity_preservation`). Like
        ``neighbor_weight`` it serves embedding search, and keeps more of the float
        neighbours on the user guide's benchmarks (page "Codes for embedding search"; 3
        measured best); the two can be combined.
    quantization_weight : float, default=0.0
        Weight of ``mean((|h| - 1)^2)``, pulling the tanh codes to +-1. The forward codes
        are already binary (straight-through sign), so this is off by default.
    hidden_sizes : tuple of int, default=(1024,)
        Hidden layer widths of the default MLP encoder (ignored with ``encoder``).
    latent_dim : int, default=256
        Dimension of the latent head.
    encoder : torch.nn.Module, default=None
        Your own backbone (e.g. a CNN over image tensors). It maps a batch to a 2-D
        feature tensor; the hash and latent heads are added on top. A copy is trained;
        yours is left untouched. None uses an MLP over feature vectors.
    standardize : bool, default=True
        Standardise feature vectors (default encoder only) with the mean and standard
        deviation of each feature, fitted in ``fit`` and applied in ``transform``, so the
        augmentation's noise, in feature standard deviations, means the same whatever the
        input's scale. Costs one float32 copy of the training input during ``fit``.
    augment : "noise", callable or None, default="noise"
        How a random view is made: "noise" adds Gaussian noise (``noise_std``) then feature
        dropout (``feature_dropout``) to standardised feature vectors; a callable maps a
        batch tensor (on the training device) to an augmented batch (e.g. torchvision
        transforms for images); None uses the input as is (with multi-view input).
    noise_std : float, default=0.6
        Noise of the "noise" augmentation, in units of feature standard deviation.
    feature_dropout : float, default=0.4
        Dropout probability of the "noise" augmentation.
    mix_neighbors : int, default=5
        Neighbour mixing, for 2-D feature vectors with the default encoder: before
        training, each row gets ``mix_neighbors`` more views ``x + w (x_nn - x)``, one per
        nearest training row ``x_nn`` (cosine), ``w`` uniform in [0, ``mix_weight``];
        training then draws two distinct views of each sample per step (and applies
        ``augment`` to each). Views that reach toward each sample's neighbourhood give
        better codes. Costs ``1 + mix_neighbors`` copies of the training set in memory and
        a brute-force neighbour search (O(n_samples^2)); 0 turns it off.
    mix_weight : float, default=1.0
        Largest mixing weight ``w`` (0 leaves the views equal to the input).
    batch_size : int, default=128
        Training batch size (the sorted lists have this length; the sort costs
        O(batch_size^2) per sample). Incomplete last batches are dropped.
    max_epochs : int, default=50
        Training epochs (the most, with ``early_stopping``; more of them, with
        ``warm_start``).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the samples, score the training loss on them
        after every epoch (``history_[:, "valid_loss"]``), stop when it has not improved
        for ``n_iter_no_change`` epochs and keep the weights of the best epoch. The history
        also records ``"valid_neighbor_recall"``: the share of each held-out sample's 10
        nearest held-out samples by cosine among its 10 nearest codes (on 2,000 of them
        at most), a label-free score of the codes.
    validation_fraction : float, default=0.1
        Share of the samples held out with ``early_stopping``.
    n_iter_no_change : int, default=5
        Epochs without improvement of the validation loss before stopping.
    warm_start : bool, default=False
        Continue training the fitted network (``max_epochs`` more epochs, the history
        appended) instead of starting anew; the input standardisation fitted first is
        kept.
    lr : float, default=1e-3
        Adam learning rate.
    device : str or torch.device, default="auto"
        Torch device; "auto" picks CUDA when available.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling and augmentation. With a fixed seed, the same
        data on the same machine gives identical codes on the CPU. The global torch RNG is
        left as it was.
    verbose : int, default=0
        0 is silent, 1 shows a progress bar over epochs, 2 and more print skorch's table
        of losses per epoch.
    callbacks : list of skorch callbacks, default=None
        Extra skorch callbacks.
    net_kwargs : dict, default=None
        Other ``skorch.NeuralNet`` arguments (e.g. ``{"optimizer__weight_decay": 1e-4}``).

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The trained network.
    history_ : skorch.History
        Training history (``history_[:, "train_loss"]`` is the loss per epoch, and with
        ``early_stopping`` ``history_[:, "valid_loss"]`` the validation loss).
    n_iter_ : int
        Epochs trained, over every ``fit`` of a warm start.
    n_features_in_ : int
        Number of input features.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the input features, when they are all strings.
    n_bytes_ : int
        Bytes of one packed code.
    multi_view_ : bool
        Whether ``fit`` received several precomputed views per sample.
    mean_, scale_ : ndarray of shape (n_features_in_,)
        Per-feature mean and standard deviation of the training input (1 for a constant
        feature); only with ``standardize`` and the default encoder.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.preprocessing import StandardScaler
    >>> X = StandardScaler().fit_transform(load_digits().data)
    >>> codes = NSHTransformer(n_bits=32, max_epochs=2, random_state=0).fit_transform(X)
    >>> codes.shape, codes.dtype
    ((1797, 4), dtype('uint8'))
    """

    #: The skorch net class :meth:`_make_net` builds; a subclass may change the training step.
    net_class = NSHNet

    _parameter_constraints = {
        "n_bits": [Interval(Integral, 1, None, closed="left")],
        "sorter": [StrOptions({"torchsort", "softsort", "none"})],
        "n_positives": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "temperature": _positive(),
        "sort_temperature": _positive(),
        "regularization_strength": _positive(),
        "sorted_weight": _non_negative(),
        "code_nce_weight": _non_negative(),
        "code_temperature": _positive(),
        "quantization_weight": _non_negative(),
        "neighbor_weight": _non_negative(),
        "similarity_weight": _non_negative(),
        "hidden_sizes": [tuple, list],
        "latent_dim": [Interval(Integral, 1, None, closed="left")],
        "encoder": [torch.nn.Module, None],
        "standardize": ["boolean"],
        "augment": [StrOptions({"noise"}), callable, None],
        "noise_std": _non_negative(),
        "feature_dropout": [Interval(Real, 0, 1, closed="left")],
        "mix_neighbors": _non_negative(Integral),
        "mix_weight": [Interval(Real, 0, 1, closed="both")],
        "batch_size": [Interval(Integral, 2, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "warm_start": ["boolean"],
        "lr": _positive(),
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "callbacks": [list, None],
        "net_kwargs": [dict, None],
    }

    _safe_arrays = ("mean_", "scale_")  # set only with standardize and the default encoder
    _safe_values = ("n_features_in_", "n_bytes_", "multi_view_")

    def __init__(
        self,
        *,
        n_bits=64,
        sorter="torchsort",
        n_positives="auto",
        temperature=0.2,
        sort_temperature=1.0,
        regularization_strength=1.0,
        sorted_weight=0.1,
        code_nce_weight=1.0,
        code_temperature=0.5,
        quantization_weight=0.0,
        neighbor_weight=0.0,
        similarity_weight=0.0,
        hidden_sizes=(1024,),
        latent_dim=256,
        encoder=None,
        standardize=True,
        augment="noise",
        noise_std=0.6,
        feature_dropout=0.4,
        mix_neighbors=5,
        mix_weight=1.0,
        batch_size=128,
        max_epochs=50,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        warm_start=False,
        lr=1e-3,
        device="auto",
        random_state=None,
        verbose=0,
        callbacks=None,
        net_kwargs=None,
    ):
        self.n_bits = n_bits
        self.sorter = sorter
        self.n_positives = n_positives
        self.temperature = temperature
        self.sort_temperature = sort_temperature
        self.regularization_strength = regularization_strength
        self.sorted_weight = sorted_weight
        self.code_nce_weight = code_nce_weight
        self.code_temperature = code_temperature
        self.quantization_weight = quantization_weight
        self.neighbor_weight = neighbor_weight
        self.similarity_weight = similarity_weight
        self.hidden_sizes = hidden_sizes
        self.latent_dim = latent_dim
        self.encoder = encoder
        self.standardize = standardize
        self.augment = augment
        self.noise_std = noise_std
        self.feature_dropout = feature_dropout
        self.mix_neighbors = mix_neighbors
        self.mix_weight = mix_weight
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.warm_start = warm_start
        self.lr = lr
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.net_kwargs = net_kwargs

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None):
        """Train the hashing network on ``X`` (labels are ignored).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Feature vectors, ideally standardised. With the default encoder, 3-D input of
            shape (n_samples, n_views, n_features) gives several precomputed views of each
            sample (e.g. image augmentations through a frozen backbone); two are drawn per
            sample and step. With your own ``encoder``, any shape it accepts.
        y : None
            Ignored.

        Returns
        -------
        self : NSHTransformer
        """
        self._check_params()
        warm = self.warm_start and hasattr(self, "net_")
        X, multi_view = self._validate_training_input(X, reset=not warm)
        X = self._input_for_network(X) if warm else self._fit_standardize(X)
        rng = check_random_state(self.random_state)
        torch_seed, views_seed = rng.randint(_MAX_SEED), rng.randint(_MAX_SEED)
        views = self.net_.views if warm else self._make_views()
        X_train = views.prepare(X, multi_view=multi_view, random_state=views_seed)
        sample_shape = X_train.shape[2:] if views.multi_view_ else X_train.shape[1:]
        device = resolve_device(self.device)
        epochs_before = len(self.net_.history) if warm else 0
        with _seeded_torch(torch_seed, device):
            if warm:
                net = self.net_.partial_fit(X_train, None, epochs=self.max_epochs)
            else:
                net = self._make_net(self._make_module(sample_shape), views, device, len(X))
                net.fit(X_train, None)
        self.net_ = _finished_training(net, self.max_epochs, epochs_before)
        self.n_iter_ = len(self.net_.history)
        self.multi_view_ = multi_view
        self.n_bytes_ = n_bytes_for(self.n_bits)
        self._record_versions()
        return self

    # ------------------------------------------------------------------ validation
    def _check_params(self):
        self._validate_params()
        if not all(isinstance(s, Integral) and not isinstance(s, bool) and s > 0 for s in self.hidden_sizes):
            raise ValueError(f"hidden_sizes must be a tuple of positive integers, got {self.hidden_sizes!r}")
        weights = ("sorted_weight", "code_nce_weight", "neighbor_weight", "similarity_weight")
        if all(getattr(self, name) == 0 for name in weights):
            raise ValueError(f"{', '.join(weights[:-1])} and {weights[-1]} are all 0: nothing to train")
        resolve_device(self.device)  # raises for a device torch would not accept

    def _n_positives(self):
        """``n_positives`` with "auto" resolved from the code length."""
        if self.n_positives == "auto":
            return 4 if self.n_bits < 32 else 8
        return self.n_positives

    def _split_sizes(self, n_samples):
        """Samples trained on and held out (none without ``early_stopping``)."""
        n_valid = math.ceil(self.validation_fraction * n_samples) if self.early_stopping else 0
        return n_samples - n_valid, n_valid

    def _validate_training_input(self, X, reset=True):
        """Float32 training input and whether it holds several views per sample."""
        # A custom encoder may take images (n, C, H, W); so may multi-view input (n, views, d).
        X = validate_data(self, X, reset=reset, accept_sparse=False, dtype=[np.float32, np.float64],
                          allow_nd=True)
        n_samples = X.shape[0]
        if n_samples < 2:
            raise ValueError(
                f"NSHTransformer needs at least 2 samples to train (found n_samples = {n_samples}): "
                "each sample is contrasted with the others in its batch"
            )
        n_positives = self._n_positives() if self.sorted_weight else 1
        for part, size in zip(("training", "validation"), self._split_sizes(n_samples)):
            batch_size = min(self.batch_size, size)
            if (size or part == "training") and batch_size <= n_positives:
                raise ValueError(
                    f"too few samples for a batch: the {part} batch size {batch_size} (batch_size="
                    f"{self.batch_size}, n_samples={n_samples}"
                    + (f", validation_fraction={self.validation_fraction}" if self.early_stopping else "")
                    + f") must exceed n_positives={n_positives}"
                    + (" (from 'auto')" if self.n_positives == "auto" and self.sorted_weight else "")
                    + "; lower n_positives or give more samples"
                )
        if self.encoder is None and X.ndim not in (2, 3):
            raise ValueError(
                f"expected 2-D feature vectors (n_samples, n_features) or 3-D views (n_samples, n_views, "
                f"n_features), got shape {X.shape}; pass encoder= for other input"
            )
        multi_view = self.encoder is None and X.ndim == 3
        if multi_view:
            # Views are not features: transform takes single (n_samples, n_features) rows.
            self.n_features_in_ = X.shape[2]
        X = np.asarray(X, dtype=np.float32)  # a copy only if needed; never written to
        # torch cannot wrap a read-only array without copying anyway.
        return (X if X.flags.writeable else X.copy()), multi_view

    def _fit_standardize(self, X):
        """``X`` standardised per feature (a new array), the statistics kept; or ``X`` as is."""
        for name in ("mean_", "scale_"):  # from an earlier fit with other settings
            self.__dict__.pop(name, None)
        if not self.standardize or self.encoder is not None:
            return X
        rows = X.reshape(-1, X.shape[-1])  # views of a sample count as rows
        self.mean_ = rows.mean(axis=0, dtype=np.float64).astype(np.float32)
        scale = rows.std(axis=0, dtype=np.float64)
        self.scale_ = np.where(scale > 0, scale, 1.0).astype(np.float32)
        return (X - self.mean_) / self.scale_

    def _input_for_network(self, X):
        """Rows of ``X`` as the network saw them in training (standardised when it was)."""
        if hasattr(self, "mean_"):
            return (X - self.mean_) / self.scale_
        return X

    # ------------------------------------------------------------------ hooks
    def _make_views(self):
        """The :class:`~sortedhash.views.TrainingViews` of this estimator's parameters."""
        augment = FeatureNoise(self.noise_std, self.feature_dropout) if self.augment == "noise" else self.augment
        mix_neighbors = self.mix_neighbors if self.encoder is None else 0
        return TrainingViews(augment, mix_neighbors=mix_neighbors, mix_weight=self.mix_weight)

    def _make_module(self, sample_shape):
        """The hashing network for samples of ``sample_shape`` (one view, without the batch axis)."""
        if self.encoder is None:
            backbone = MLPBackbone(sample_shape[-1], tuple(self.hidden_sizes))
            width = backbone.out_features
        else:
            backbone = copy.deepcopy(self.encoder)
            width = _output_width(backbone, sample_shape)
        return HashingNetwork(backbone, width, self.n_bits, self.latent_dim)

    def _make_criterion(self):
        """The loss: :class:`~sortedhash.nn.NSHLoss` with this estimator's parameters."""
        sorter = make_sorter(self.sorter, self.n_bits, self.sort_temperature, self.regularization_strength)
        return NSHLoss(
            sorter,
            n_positives=self._n_positives(),
            temperature=self.temperature,
            sorted_weight=self.sorted_weight,
            code_nce_weight=self.code_nce_weight,
            code_temperature=self.code_temperature,
            quantization_weight=self.quantization_weight,
            neighbor_weight=self.neighbor_weight,
            similarity_weight=self.similarity_weight,
        )

    def _make_net(self, module, views, device, n_samples):
        """The skorch net (:attr:`net_class`) that trains ``module`` on ``views`` of ``n_samples``."""
        n_train, n_valid = self._split_sizes(n_samples)
        callbacks = [("stop_on_non_finite", StopOnNonFiniteLoss())]
        if self.verbose == 1:
            callbacks.append(("progress", EpochProgressBar(desc=f"NSH {self.n_bits} bits")))
        kwargs = dict(
            optimizer=torch.optim.Adam,
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=min(self.batch_size, n_train),
            train_split=None,
            iterator_train__shuffle=True,
            iterator_train__drop_last=True,
            device=device,
            verbose=int(self.verbose >= 2),
        )
        if self.early_stopping:
            split_seed = int(torch.randint(_MAX_SEED, ()))  # drawn from the fit's seeded torch RNG
            kwargs.update(train_split=ValidSplit(self.validation_fraction, random_state=split_seed),
                          iterator_valid__batch_size=min(self.batch_size, n_valid),
                          iterator_valid__drop_last=True)
            callbacks += [("valid_neighbor_recall", ValidNeighborRecall()),
                          ("early_stopping", EarlyStopping(patience=self.n_iter_no_change, load_best=True))]
        callbacks += list(self.callbacks or [])
        kwargs.update(self.net_kwargs or {})
        _check_validation_is_scored(callbacks, kwargs["train_split"])
        return self.net_class(module, criterion=self._make_criterion(), views=views, callbacks=callbacks, **kwargs)

    # ------------------------------------------------------------------ transform
    def transform(self, X):
        """Encode ``X`` into packed binary codes.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to encode (single, un-augmented samples; for a model fitted on
            multi-view input, 2-D feature vectors).

        Returns
        -------
        codes : ndarray of shape (n_samples, ceil(n_bits / 8)), dtype uint8
        """
        check_is_fitted(self)

        def codes(module, batch):
            return np.packbits(module.encode(batch).cpu().numpy(), axis=1, bitorder="little")

        return self._run_network(X, codes)

    def decision_function(self, X):
        """The hash head's pre-activations, whose signs are the bits: bit ``j`` of a code is
        set where column ``j`` is >= 0 (what :class:`~sortedhash.RerankedNeighbors` scores
        candidates' codes with).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples, as for :meth:`transform`.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_bits), dtype float32
        """
        check_is_fitted(self)
        return self._run_network(X, lambda module, batch: module.hash_scores(batch).cpu().numpy())

    def _run_network(self, X, step):
        """``step(module, batch)`` (a 2-D numpy array) for batches of validated ``X``, in
        eval mode, gathered into one array."""
        # Feature vectors (also for a model fitted on multi-view input) must be 2-D; a custom
        # encoder takes whatever shape it was fitted on.
        X = validate_data(self, X, reset=False, accept_sparse=False, dtype=[np.float32, np.float64],
                          allow_nd=self.encoder is not None)
        module = self.net_.module_
        device = next(module.parameters()).device
        was_training = module.training
        module.eval()
        out = None
        try:
            for start in range(0, X.shape[0], _ENCODE_BATCH):
                # torch.tensor copies: the caller's (possibly read-only) array is never wrapped.
                rows = self._input_for_network(X[start:start + _ENCODE_BATCH])
                batch = torch.tensor(rows, dtype=torch.float32, device=device)
                values = step(module, batch)
                if out is None:
                    out = np.empty((X.shape[0], values.shape[1]), dtype=values.dtype)
                out[start:start + len(values)] = values
        finally:
            module.train(was_training)
        return out

    # ------------------------------------------------------------------ safe format
    def _to_safe_state(self):
        params, arrays, values = super()._to_safe_state()
        for key in ("encoder", "callbacks"):
            if params[key] is not None:
                raise ValueError(
                    f"save() cannot store {key}={type(params[key]).__name__}: its code would have to "
                    "be rebuilt on load. Use joblib for such a model (and load only files you trust)."
                )
        if callable(params["augment"]):
            raise ValueError("save() cannot store a callable augment; use joblib for such a model")
        arrays.update({f"module.{k}": v for k, v in self.net_.module_.state_dict().items()})
        values["history"] = self.net_.history.to_list()
        return params, arrays, values

    @classmethod
    def _from_safe_params(cls, params):
        params = dict(params, hidden_sizes=tuple(params["hidden_sizes"]))  # JSON holds it as a list
        params.setdefault("standardize", False)  # files of 0.1 predate it: their models did not
        return cls(**params)

    @classmethod
    def _from_safe_state(cls, params, arrays, values):
        from skorch.history import History

        estimator = super()._from_safe_state(params, arrays, values)
        # Building the parts initialises weights and may draw a seed: not from the caller's RNG.
        with _seeded_torch(0, "cpu"):
            module = estimator._make_module((estimator.n_features_in_,))
            module.load_state_dict({k[len("module."):]: torch.from_numpy(v) for k, v in arrays.items()
                                    if k.startswith("module.")}, strict=True)
            net = estimator._make_net(module, estimator._make_views(), "cpu", estimator.batch_size).initialize()
        estimator.n_iter_ = len(values.get("history", []))
        net.history = History(values.get("history", []))
        estimator.net_ = net
        return estimator

    # ------------------------------------------------------------------ sklearn plumbing
    @property
    def history_(self):
        """Training history of the skorch net (loss per epoch under ``"train_loss"``)."""
        check_is_fitted(self)
        return self.net_.history

    def __sklearn_is_fitted__(self):
        # validate_data sets n_features_in_ before training starts; only a completed (or
        # cleanly interrupted) fit sets net_.
        return hasattr(self, "net_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        tags.non_deterministic = self.random_state is None
        return tags


@contextlib.contextmanager
def _seeded_torch(seed, device):
    """torch's RNG seeded with ``seed`` inside the block, and as it was after it."""
    devices = [torch.cuda.current_device()] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _output_width(backbone, sample_shape):
    """Width of a custom backbone's 2-D output, probed on two zero samples."""
    device = next(backbone.parameters(), torch.empty(0)).device
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            out = backbone(torch.zeros((2, *sample_shape), device=device))
    finally:
        backbone.train(was_training)
    if out.ndim != 2:
        raise ValueError(f"encoder must return a 2-D (batch, features) tensor, got shape {tuple(out.shape)}")
    return out.shape[1]


def _check_validation_is_scored(callbacks, train_split):
    """Refuse callbacks that monitor a validation score when nothing is held out."""
    if train_split is not None:
        return
    for item in callbacks:
        callback = item[1] if isinstance(item, tuple) else item  # (name, callback) or a callback
        monitor = getattr(callback, "monitor", None)
        if isinstance(monitor, str) and monitor.startswith("valid_"):
            raise ValueError(
                f"callbacks: {type(callback).__name__} monitors {monitor!r}, but no validation split is "
                "scored: set early_stopping=True (validation_fraction holds samples out), or monitor "
                "'train_loss'"
            )


def _finished_training(net, max_epochs, epochs_before=0):
    """``net`` once its history is clean; warns when training was interrupted.

    skorch turns a KeyboardInterrupt into a clean stop; its history then ends with the
    row of the epoch that was cut short, which has no loss. Early stopping stops the same
    way, deliberately: that is no interruption.
    """
    partial = len(net.history) > epochs_before and "train_loss" not in net.history[-1]
    if partial:
        net.history.pop()
    done = len(net.history) - epochs_before
    if done == 0 and epochs_before == 0:
        raise RuntimeError("training was interrupted before the first epoch ended; the estimator is not fitted")
    stopped = any(isinstance(cb, EarlyStopping) and cb.misses_ >= cb.patience for _, cb in net.callbacks_)
    if done < max_epochs and not stopped:
        warnings.warn(
            f"training stopped after {done} of {max_epochs} epochs (interrupted); the estimator is "
            f"fitted with the {done} epochs done" + (" and part of the next" if partial else ""),
            RuntimeWarning,
            stacklevel=3,
        )
    return net
