import math

import pytest
import torch

from sortedhash.nn import code_nt_xent, quantization_loss, sign_ste, sorted_nce


def test_sorted_nce_hand_computed():
    c = torch.tensor([[0.9, 0.5, 0.1, -0.2]])
    tau = 0.5
    neg = math.exp(0.1 / tau) + math.exp(-0.2 / tau)
    expected = -0.5 * sum(math.log(math.exp(v / tau) / (math.exp(v / tau) + neg)) for v in (0.9, 0.5))
    assert sorted_nce(c, 2, tau).item() == pytest.approx(expected, rel=1e-6)


def test_sorted_nce_rejects_bad_m():
    with pytest.raises(ValueError, match="n_positives"):
        sorted_nce(torch.zeros(2, 4), 4, 0.1)


def test_code_nt_xent_prefers_matching_views():
    torch.manual_seed(0)
    a = torch.randn(16, 32).sign()
    assert code_nt_xent(a, a, 0.5) < code_nt_xent(a, torch.randn(16, 32).sign(), 0.5)


def test_sign_ste_is_binary_with_identity_gradient():
    h = torch.tensor([-0.3, 0.0, 0.7], requires_grad=True)
    b = sign_ste(h)
    assert b.tolist() == [-1.0, 1.0, 1.0]
    b.sum().backward()
    assert h.grad.tolist() == [1.0, 1.0, 1.0]


def test_quantization_loss_zero_at_signs():
    assert quantization_loss(torch.tensor([1.0, -1.0])).item() == 0.0
    assert quantization_loss(torch.tensor([0.0])).item() == 1.0
