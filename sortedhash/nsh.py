"""NSHTransformer: Naturally-Sorted Hashing as a scikit-learn transformer."""

import copy
import numbers
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from ._device import resolve_device
from ._neighbor_mixing import neighbor_mix_views
from ._skorch import EpochProgressBar, NSHNet, StopOnNonFiniteLoss
from ._versions import VersionedMixin
from .bits import n_bytes_for
from .nn import FeatureNoise, HashingNetwork, MLPBackbone, NSHLoss, make_sorter

__all__ = ["NSHTransformer"]

# Rows encoded per forward pass in transform: bounds memory whatever the input size.
_ENCODE_BATCH = 4096


class NSHTransformer(VersionedMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Naturally-Sorted Hashing: learn binary codes by sorting in-batch Hamming distances.

    Each training step draws two random views of a batch, encodes both into binary codes
    ``B`` (sign of a tanh hash head, straight-through gradient) and unit latent vectors
    ``Z``, sorts every anchor's candidates by Hamming similarity with a differentiable
    sorter, gathers the latent vectors in that order and applies SortedNCE: the first
    ``n_positives`` positions are positives, the rest negatives. Gradients reach the hash
    head through the sorter (Yu et al., "Learning to Hash Naturally Sorts", IJCAI 2022).
    A code-level NT-Xent term (``code_nce_weight``) can be added to SortedNCE.

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
        ``n_positives=1`` SortedNCE is then plain InfoNCE, the ablation). Both sorters give
        candidates tied in Hamming distance the mean gradient of their sorted positions, so
        training depends on no tie order; at ``regularization_strength`` up to 1.0 they
        then compute the same loss and gradient, and softsort is the cheaper.
    n_positives : int or "auto", default="auto"
        ``m``: leading sorted positions treated as positives by SortedNCE. "auto" is 4 below
        32 bits and 8 from 32 bits on: short codes take few Hamming values (17 at 16 bits),
        and m = 4 measured better than 8 there (20 Newsgroups, 16 bits, 3 seeds: mAP@100
        0.499 against 0.490), while at 32 and 64 bits m = 8 is what the benchmarks use.
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
        Weight of SortedNCE.
    code_nce_weight : float, default=1.0
        Weight of an NT-Xent term between the two views' codes (plain contrastive hashing).
        The defaults (code NCE plus 0.1 SortedNCE, strong augmentation, neighbour mixing)
        measured best on feature vectors; the faithful NSH of the paper is
        ``sorted_weight=1.0, code_nce_weight=0.0, noise_std=0.3, feature_dropout=0.1,
        mix_neighbors=0``, and plain contrastive hashing is ``sorted_weight=0.0`` (with
        ``mix_neighbors=0``, as it was benchmarked before neighbour mixing).
    code_temperature : float, default=0.5
        Temperature of that term.
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
        ``augment`` to each), as with multi-view input. Views reach toward each sample's
        neighbourhood: better codes with or without the sorted term (mAP@k 0 to
        +0.018 for NSH on 20 Newsgroups and CIFAR-10, more for plain contrastive hashing:
        docs/benchmarks.md). It holds ``1 + mix_neighbors`` copies of the
        training set in memory and finds the neighbours by brute force (O(n_samples^2));
        0 turns it off.
    mix_weight : float, default=1.0
        Largest mixing weight ``w`` (0 leaves the views equal to the input).
    batch_size : int, default=128
        Training batch size (the sorted lists have this length). Incomplete last batches
        are dropped.
    max_epochs : int, default=50
        Training epochs.
    lr : float, default=1e-3
        Adam learning rate.
    device : str, default="auto"
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
        Training history (``history_[:, "train_loss"]`` is the loss per epoch).
    n_features_in_ : int
        Number of input features.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the input features, when they are all strings.
    n_bytes_ : int
        Bytes of one packed code.
    multi_view_ : bool
        Whether ``fit`` received several precomputed views per sample.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.preprocessing import StandardScaler
    >>> X = StandardScaler().fit_transform(load_digits().data)
    >>> codes = NSHTransformer(n_bits=32, max_epochs=2, random_state=0).fit_transform(X)
    >>> codes.shape, codes.dtype
    ((1797, 4), dtype('uint8'))
    """

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
        hidden_sizes=(1024,),
        latent_dim=256,
        encoder=None,
        augment="noise",
        noise_std=0.6,
        feature_dropout=0.4,
        mix_neighbors=5,
        mix_weight=1.0,
        batch_size=128,
        max_epochs=50,
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
        self.hidden_sizes = hidden_sizes
        self.latent_dim = latent_dim
        self.encoder = encoder
        self.augment = augment
        self.noise_std = noise_std
        self.feature_dropout = feature_dropout
        self.mix_neighbors = mix_neighbors
        self.mix_weight = mix_weight
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.lr = lr
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.net_kwargs = net_kwargs

    # ------------------------------------------------------------------ validation
    def _check_params(self):
        def positive_int(name, minimum=1):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")

        def non_negative(name, strict=False):
            value = getattr(self, name)
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
            if not ok or value < 0 or (strict and value == 0):
                bound = "> 0" if strict else ">= 0"
                raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")

        positive_int("n_bits")
        if isinstance(self.n_positives, str):
            if self.n_positives != "auto":
                raise ValueError(f"n_positives must be 'auto' or an integer >= 1, got {self.n_positives!r}")
        else:
            positive_int("n_positives")
        positive_int("batch_size", minimum=2)
        positive_int("max_epochs")
        positive_int("latent_dim")
        positive_int("mix_neighbors", minimum=0)
        for name in ("temperature", "sort_temperature", "regularization_strength", "code_temperature", "lr"):
            non_negative(name, strict=True)
        for name in ("sorted_weight", "code_nce_weight", "quantization_weight", "noise_std"):
            non_negative(name)
        if not (isinstance(self.feature_dropout, numbers.Real) and 0 <= self.feature_dropout < 1):
            raise ValueError(f"feature_dropout must be in [0, 1), got {self.feature_dropout!r}")
        if not (isinstance(self.mix_weight, numbers.Real) and not isinstance(self.mix_weight, bool)
                and 0 <= self.mix_weight <= 1):
            raise ValueError(f"mix_weight must be in [0, 1], got {self.mix_weight!r}")
        if self.sorter not in ("torchsort", "softsort", "none"):
            raise ValueError(f"sorter must be 'torchsort', 'softsort' or 'none', got {self.sorter!r}")
        if self.sorted_weight == 0 and self.code_nce_weight == 0:
            raise ValueError("sorted_weight and code_nce_weight are both 0: nothing to train")
        if not (self.augment in ("noise", None) or callable(self.augment)):
            raise ValueError(f"augment must be 'noise', a callable or None, got {self.augment!r}")
        if self.encoder is not None and not isinstance(self.encoder, torch.nn.Module):
            raise TypeError(f"encoder must be a torch.nn.Module or None, got {type(self.encoder).__name__}")
        sizes = self.hidden_sizes
        if not (isinstance(sizes, (tuple, list)) and all(
                isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in sizes)):
            raise ValueError(f"hidden_sizes must be a tuple of positive integers, got {sizes!r}")
        resolve_device(self.device)  # raises for a device torch would not accept

    def _resolve_n_positives(self):
        if isinstance(self.n_positives, str):  # "auto", checked in _check_params
            return 4 if self.n_bits < 32 else 8
        return self.n_positives

    def _validate_X(self, X, reset):
        # A custom encoder may take images (n, C, H, W); so may multi-view input (n, views, d).
        return validate_data(
            self,
            X,
            reset=reset,
            accept_sparse=False,
            dtype=[np.float32, np.float64],
            allow_nd=True,
            ensure_min_samples=1,
        )

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
        X = self._validate_X(X, reset=True)
        n_samples = X.shape[0]
        if n_samples < 2:
            raise ValueError(
                f"NSHTransformer needs at least 2 samples to train (found n_samples = {n_samples}): "
                "each sample is contrasted with the others in its batch"
            )
        batch_size = min(self.batch_size, n_samples)
        n_positives = self._resolve_n_positives()
        if self.sorted_weight and batch_size <= n_positives:
            raise ValueError(
                f"too few samples for a batch: batch size {batch_size} (batch_size={self.batch_size}, "
                f"n_samples={n_samples}) must exceed n_positives={n_positives}"
                + (" (from 'auto')" if isinstance(self.n_positives, str) else "")
                + "; lower n_positives or give more samples"
            )
        multi_view = self.encoder is None and X.ndim == 3
        if self.encoder is None and X.ndim not in (2, 3):
            raise ValueError(
                f"expected 2-D feature vectors (n_samples, n_features) or 3-D views (n_samples, n_views, "
                f"n_features), got shape {X.shape}; pass encoder= for other input"
            )
        if multi_view and X.shape[1] < 2 and self.augment is None:
            raise ValueError("multi-view input needs at least 2 views per sample, or an augment")
        if multi_view:
            # Views are not features: transform takes single (n_samples, n_features) rows.
            self.n_features_in_ = X.shape[2]
        X = np.asarray(X, dtype=np.float32)  # a copy only if needed; never written to
        if not X.flags.writeable:
            X = X.copy()  # torch cannot wrap a read-only array without copying anyway

        device = resolve_device(self.device)
        rng = check_random_state(self.random_state)
        seed = rng.randint(np.iinfo(np.int32).max)
        train_on = X
        if self.encoder is None and X.ndim == 2 and self.mix_neighbors:
            # Drawn after the torch seed, so that seed is the one it was before mixing existed.
            mix_seed = rng.randint(np.iinfo(np.int32).max)
            train_on = neighbor_mix_views(X, self.mix_neighbors, self.mix_weight, mix_seed)
        devices = [torch.cuda.current_device()] if torch.device(device).type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            net = self._build_net(train_on, device, batch_size, train_on.ndim == 3 and self.encoder is None)
            net.fit(train_on, None)

        # skorch turns a KeyboardInterrupt into a clean stop; its history then ends with the
        # row of the epoch that was cut short, which has no loss.
        partial = len(net.history) and "train_loss" not in net.history[-1]
        if partial:
            net.history.pop()
        done = len(net.history)
        if done == 0:
            raise RuntimeError("training was interrupted before the first epoch ended; the estimator is not fitted")
        if done < self.max_epochs:
            warnings.warn(
                f"training stopped after {done} of {self.max_epochs} epochs (interrupted); the "
                f"estimator is fitted with the {done} epochs done"
                + (" and part of the next" if partial else ""),
                RuntimeWarning,
                stacklevel=2,
            )
        self.net_ = net
        self.multi_view_ = multi_view
        self.n_bytes_ = n_bytes_for(self.n_bits)
        self._record_versions()
        return self

    def _build_net(self, X, device, batch_size, multi_view):
        if self.encoder is None:
            backbone = MLPBackbone(X.shape[-1], tuple(self.hidden_sizes))
            backbone_dim = backbone.out_features
        else:
            backbone = copy.deepcopy(self.encoder)
            backbone_dim = self._probe_width(backbone, X)
        module = HashingNetwork(backbone, backbone_dim, self.n_bits, self.latent_dim)
        sorter = make_sorter(self.sorter, self.n_bits, self.sort_temperature, self.regularization_strength)
        criterion = NSHLoss(
            sorter,
            n_positives=self._resolve_n_positives(),
            temperature=self.temperature,
            sorted_weight=self.sorted_weight,
            code_nce_weight=self.code_nce_weight,
            code_temperature=self.code_temperature,
            quantization_weight=self.quantization_weight,
        )
        if self.augment == "noise":
            augment = FeatureNoise(self.noise_std, self.feature_dropout)
        else:
            augment = self.augment
        callbacks = [("stop_on_non_finite", StopOnNonFiniteLoss())]
        if self.verbose == 1:
            callbacks.append(("progress", EpochProgressBar(desc=f"NSH {self.n_bits} bits")))
        callbacks += list(self.callbacks or [])
        kwargs = dict(
            optimizer=torch.optim.Adam,
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=batch_size,
            train_split=None,
            iterator_train__shuffle=True,
            iterator_train__drop_last=True,
            device=device,
            callbacks=callbacks,
            verbose=int(self.verbose >= 2),
        )
        kwargs.update(self.net_kwargs or {})
        net = NSHNet(module, criterion=criterion, augment=augment, **kwargs)
        net.multi_view_ = multi_view
        return net

    @staticmethod
    def _probe_width(backbone, X):
        with torch.no_grad():
            was_training = backbone.training
            backbone.eval()
            out = backbone(torch.as_tensor(X[:2]))
            backbone.train(was_training)
        if out.ndim != 2:
            raise ValueError(f"encoder must return a 2-D (batch, features) tensor, got shape {tuple(out.shape)}")
        return out.shape[1]

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
        # Feature vectors (also for a model fitted on multi-view input) must be 2-D; a custom
        # encoder takes whatever shape it was fitted on.
        X = validate_data(self, X, reset=False, accept_sparse=False, dtype=[np.float32, np.float64],
                          allow_nd=self.encoder is not None)
        module = self.net_.module_
        device = next(module.parameters()).device
        was_training = module.training
        module.eval()
        codes = np.empty((X.shape[0], self.n_bytes_), dtype=np.uint8)
        try:
            for start in range(0, X.shape[0], _ENCODE_BATCH):
                # torch.tensor copies: the caller's (possibly read-only) array is never wrapped.
                batch = torch.tensor(X[start:start + _ENCODE_BATCH], dtype=torch.float32, device=device)
                bits = module.encode(batch).cpu().numpy()
                codes[start:start + len(bits)] = np.packbits(bits, axis=1, bitorder="little")
        finally:
            module.train(was_training)
        return codes

    # ------------------------------------------------------------------ sklearn plumbing
    @property
    def history_(self):
        """Training history of the skorch net (loss per epoch under ``"train_loss"``)."""
        check_is_fitted(self)
        return self.net_.history

    @property
    def _n_features_out(self):
        return self.n_bytes_

    def __sklearn_is_fitted__(self):
        # validate_data sets n_features_in_ before training starts; only a completed (or
        # cleanly interrupted) fit sets net_.
        return hasattr(self, "net_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        tags.non_deterministic = self.random_state is None
        return tags
