import math

import numpy as np
import pytest
import torch

from sortedhash.nn import NSHLoss, code_nt_xent, make_sorter, quantization_loss, sign_ste, sorted_nce


def test_sorted_nce_hand_computed():
    c = torch.tensor([[0.9, 0.5, 0.1, -0.2]])
    tau = 0.5
    neg = math.exp(0.1 / tau) + math.exp(-0.2 / tau)
    expected = -0.5 * sum(math.log(math.exp(v / tau) / (math.exp(v / tau) + neg)) for v in (0.9, 0.5))
    assert sorted_nce(c, 2, tau).item() == pytest.approx(expected, rel=1e-6)


def test_sorted_nce_rejects_bad_m():
    with pytest.raises(ValueError, match="n_positives"):
        sorted_nce(torch.zeros(2, 4), 4, 0.1)


def test_sorted_nce_with_several_m_is_the_mean_over_them():
    c = torch.randn(5, 9, generator=torch.Generator().manual_seed(0))
    expected = (sorted_nce(c, 1, 0.3) + sorted_nce(c, 4, 0.3) + sorted_nce(c, 8, 0.3)) / 3
    assert sorted_nce(c, (1, 4, 8), 0.3).item() == pytest.approx(expected.item(), rel=1e-6)
    # One m given as a NumPy integer (e.g. from a parameter grid) is still one m.
    assert sorted_nce(c, np.int64(4), 0.3).item() == pytest.approx(sorted_nce(c, 4, 0.3).item())
    with pytest.raises(ValueError, match="n_positives=9"):
        sorted_nce(c, (2, 9), 0.3)


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


def _views(n=24, bits=16, latent=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(2):
        h = torch.tanh(torch.randn(n, bits, generator=g))
        z = torch.nn.functional.normalize(torch.randn(n, latent, generator=g), dim=1)
        out.append((h, sign_ste(h), z))
    return out


def test_nsh_loss_latent_nce_term_is_nt_xent_of_latents():
    (a, b) = _views()
    loss = NSHLoss(make_sorter("none", 16), n_positives=1, temperature=0.2, sorted_weight=0.0,
                   code_nce_weight=0.0, latent_nce_weight=2.0, code_temperature=0.3)
    assert loss(a, b).item() == pytest.approx(2.0 * code_nt_xent(a[2], b[2], 0.3).item(), rel=1e-6)


def test_nsh_loss_gather_codes_uses_normalised_relaxed_codes():
    (a, b) = _views()
    sorter = make_sorter("softsort", 16)
    on_codes = NSHLoss(sorter, n_positives=3, temperature=0.2, gather="codes")
    # The same loss as gathering latents that are the normalised relaxed codes.
    as_latent = NSHLoss(sorter, n_positives=3, temperature=0.2)
    swap = [(h, c, torch.nn.functional.normalize(h, dim=1)) for h, c, _ in (a, b)]
    assert on_codes(a, b).item() == pytest.approx(as_latent(*swap).item(), rel=1e-6)
    assert on_codes(a, b).item() != pytest.approx(as_latent(a, b).item(), rel=1e-3)


def test_nsh_loss_rejects_unknown_gather():
    with pytest.raises(ValueError, match="gather"):
        NSHLoss(make_sorter("none", 16), n_positives=1, temperature=0.2, gather="inputs")
