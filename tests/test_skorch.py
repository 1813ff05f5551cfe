"""The skorch net behind NSHTransformer and its callbacks."""

import numpy as np
import pytest
import torch

from sortedhash._skorch import EpochProgressBar, NSHNet
from sortedhash.nn import HashingNetwork, MLPBackbone, NSHLoss, make_sorter
from sortedhash.views import TrainingViews

from .conftest import small_nsh


def _net(views, **kwargs):
    torch.manual_seed(0)
    module = HashingNetwork(MLPBackbone(6, (16,)), 16, n_bits=8, latent_dim=4)
    criterion = NSHLoss(make_sorter("softsort", 8), n_positives=2, temperature=0.2, code_nce_weight=1.0)
    return NSHNet(module, criterion=criterion, views=views, optimizer=torch.optim.Adam, lr=1e-3, batch_size=16,
                  max_epochs=1, train_split=None, device="cpu", **kwargs).initialize()


def test_a_step_contrasts_the_two_views_the_provider_draws():
    x = torch.randn(16, 6)
    flip = TrainingViews(augment=lambda batch: torch.cat([batch[:, 3:], batch[:, :3]], dim=1))
    flip.prepare(x.numpy())
    net = _net(flip)
    loss = net.train_step_single((x, None))["loss"]
    view = torch.cat([x[:, 3:], x[:, :3]], dim=1)
    torch.testing.assert_close(loss, net.criterion_(net.module_(view), net.module_(view)))
    plain = _net(None)  # no provider: the batch against itself, un-augmented
    torch.testing.assert_close(plain.train_step_single((x, None))["loss"],
                               plain.criterion_(plain.module_(x), plain.module_(x)))


def test_there_is_no_target_loss():
    with pytest.raises(NotImplementedError, match="train_step_single"):
        _net(None).get_loss(None, None)


def test_progress_bar_counts_epochs(digits, capsys):
    X, _ = digits
    bar = EpochProgressBar(desc="test")
    small_nsh(max_epochs=3, callbacks=[bar]).fit(X[:100])
    assert bar.bar_.n == 3 and bar.bar_.total == 3 and "loss" in bar.bar_.postfix
    model = small_nsh(max_epochs=2, verbose=1).fit(X[:100])
    assert any(isinstance(cb, EpochProgressBar) for _, cb in model.net_.callbacks_)
    assert np.isfinite(model.history_[-1, "train_loss"])
