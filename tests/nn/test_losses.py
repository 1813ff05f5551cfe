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


def test_code_nt_xent_spared_samples_leave_the_negatives():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 16, generator=g).sign(), torch.randn(6, 16, generator=g).sign()
    none = torch.zeros(6, 6, dtype=torch.bool)
    assert code_nt_xent(a, b, 0.5, (none, none)).item() == pytest.approx(code_nt_xent(a, b, 0.5).item())
    spared_a, spared_b = none.clone(), none.clone()
    spared_a[0, [0, 2]] = True  # the diagonal is ignored: sample 0's other view stays its positive
    spared_b[3, 1] = True
    u = torch.nn.functional.normalize(torch.cat([a, b]), dim=1)
    logits = (u @ u.T / 0.5).tolist()
    rows = []
    for row in range(12):
        target = (row + 6) % 12
        skip = {row} | ({2, 8} if row == 0 else set()) | ({1, 7} if row == 9 else set())
        denominator = sum(math.exp(logits[row][j]) for j in range(12) if j not in skip)
        rows.append(-logits[row][target] + math.log(denominator))
    assert code_nt_xent(a, b, 0.5, (spared_a, spared_b)).item() == pytest.approx(sum(rows) / 12, rel=1e-5)


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


@pytest.mark.parametrize("sorter", ["torchsort", "softsort", "none"])
@pytest.mark.parametrize("n_positives", [4, (2, 6)])
def test_symmetric_sorted_term_is_the_mean_of_both_directions(sorter, n_positives):
    # Both directions go through the sorter as one stack of 2n rows; loss and gradients must
    # be those of the two directions computed apart.
    def leaves():
        views = []
        for h, _, z in _views(n=20, bits=16, latent=8, seed=3):
            h = h.clone().requires_grad_(True)
            z = z.clone().requires_grad_(True)
            views.append((h, sign_ste(h), z))
        return views

    crit = NSHLoss(make_sorter(sorter, 16), n_positives=n_positives, temperature=0.2)
    (h_a, b_a, z_a), (h_b, b_b, z_b) = one = leaves()
    stacked = crit._sorted_term(b_a, z_a, b_b, z_b, symmetric=True)
    stacked.backward()
    (h_a2, b_a2, z_a2), (h_b2, b_b2, z_b2) = two = leaves()
    apart = 0.5 * (crit._sorted_term(b_a2, z_a2, b_b2, z_b2) + crit._sorted_term(b_b2, z_b2, b_a2, z_a2))
    apart.backward()
    torch.testing.assert_close(stacked, apart)
    for (h1, _, z1), (h2, _, z2) in zip(one, two):
        torch.testing.assert_close(h1.grad, h2.grad)
        torch.testing.assert_close(z1.grad, z2.grad)
    if sorter != "none":  # the codes learn through the sort (NoSort gives them no gradient)
        assert float(h_a.grad.abs().sum()) > 0


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


def test_nsh_loss_spares_each_anchors_first_m_in_hamming_order():
    (a, b) = _views(n=10)
    loss = NSHLoss(make_sorter("none", 16), n_positives=(2, 3), temperature=0.2, sorted_weight=0.0,
                   code_nce_weight=1.0, code_temperature=0.5, spare_sorted_positives=True)
    distance_ab = torch.cdist(a[1], b[1], p=1)  # ranks as the Hamming distance between the codes
    spared = []
    for d in (distance_ab, distance_ab.T):
        nearest = torch.argsort(d + 1e-3 * torch.arange(10.0), dim=1, stable=True)[:, :3]  # the largest m
        spared.append(torch.zeros(10, 10, dtype=torch.bool).scatter_(1, nearest, True))
    masks = loss._sorted_positives(a[1], b[1])
    tied = [d.sort(dim=1).values[:, 2:4] for d in (distance_ab, distance_ab.T)]
    for mask, expected, t in zip(masks, spared, tied):
        untied = t[:, 0] < t[:, 1]  # rows where the 3rd and 4th nearest are not tied
        assert torch.equal(mask[untied], expected[untied]) and mask.sum(1).tolist() == [3] * 10
    assert loss(a, b).item() == pytest.approx(code_nt_xent(a[1], b[1], 0.5, masks).item(), rel=1e-6)
    assert loss(a, b).item() < code_nt_xent(a[1], b[1], 0.5).item()  # fewer negatives
