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


def test_valid_neighbor_recall_against_a_direct_computation(digits):
    X, _ = digits
    model = small_nsh(early_stopping=True, validation_fraction=0.25, max_epochs=3, mix_neighbors=0).fit(X[:400])
    recall = model.history_[:, "valid_neighbor_recall"]
    assert len(recall) == 3 and all(0 <= r <= 1 for r in recall)
    callbacks = dict(model.net_.callbacks_)
    held_out = callbacks["valid_neighbor_recall"].inputs_.numpy()  # standardised, as the net saw them
    assert held_out.shape == (100, X.shape[1])
    # The model keeps the best epoch's weights: its codes give that epoch's recorded score.
    with torch.no_grad():
        bits = model.net_.module_.encode(torch.as_tensor(held_out)).numpy()
    hamming = (bits[:, None, :] != bits[None, :, :]).sum(-1).astype(float)
    unit = held_out / np.linalg.norm(held_out, axis=1, keepdims=True)
    cosine = unit @ unit.T
    np.fill_diagonal(hamming, np.inf)
    np.fill_diagonal(cosine, -np.inf)
    by_codes = np.argsort(hamming, axis=1, kind="stable")[:, :10]
    by_floats = np.argsort(-cosine, axis=1, kind="stable")[:, :10]
    expected = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(by_codes, by_floats)])
    best_epoch = callbacks["early_stopping"].best_epoch_
    assert model.history_[best_epoch - 1, "valid_neighbor_recall"] == pytest.approx(expected)


class _RecordsInputs(torch.nn.Module):
    """A criterion that takes the clean batch and keeps it."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, view_a, view_b, inputs=None):
        self.seen = inputs
        return self.inner(view_a, view_b)


def test_a_criterion_taking_inputs_gets_the_clean_batch():
    x = torch.randn(16, 3, 6)  # three views of each sample
    views = TrainingViews(augment=lambda batch: batch + 100.0)
    views.prepare(x.numpy(), multi_view=True)
    net = _net(views)
    net.criterion_ = _RecordsInputs(net.criterion_)
    net.train_step_single((x, None))
    torch.testing.assert_close(net.criterion_.seen, x[:, 0])  # the first view, not augmented
    plain = _net(None)
    assert plain.train_step_single((x[:, 0], None))["loss"].isfinite()  # NSHLoss takes no inputs
