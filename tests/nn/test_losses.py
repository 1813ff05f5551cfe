import math

import numpy as np
import pytest
import torch

from sortedhash.nn import LevelRuns, NSHLoss, code_nt_xent, hamming_similarity, make_sorter, quantization_loss, sign_ste, sorted_nce


def test_sorted_nce_hand_computed():
    c = torch.tensor([[0.9, 0.5, 0.1, -0.2]])
    tau = 0.5
    neg = math.exp(0.1 / tau) + math.exp(-0.2 / tau)
    expected = -0.5 * sum(math.log(math.exp(v / tau) / (math.exp(v / tau) + neg)) for v in (0.9, 0.5))
    assert sorted_nce(c, 2, tau).item() == pytest.approx(expected, rel=1e-6)


def test_sorted_nce_of_runs_equals_the_dense_list():
    # Runs of 2, 0, 3 and 1 positions: m = 3 and 4 cut a run, m = 2 ends one, an empty run between.
    runs = LevelRuns(torch.tensor([[0.9, 7.0, 0.2, -0.4]]), torch.tensor([[2.0, 0.0, 3.0, 1.0]]), 6)
    dense = torch.tensor([[0.9, 0.9, 0.2, 0.2, 0.2, -0.4]])
    torch.testing.assert_close(runs.dense(), dense)
    for m in range(1, 6):
        values = runs.values.clone().requires_grad_()
        loss = sorted_nce(LevelRuns(values, runs.counts, 6), m, 0.3)
        loss.backward()
        expanded = dense.clone().requires_grad_()
        expected = sorted_nce(expanded, m, 0.3)
        expected.backward()
        torch.testing.assert_close(loss, expected)
        # A run's gradient is the sum over its positions; the empty run gets none.
        sums = torch.stack([expanded.grad[0, :2].sum(), torch.tensor(0.0), expanded.grad[0, 2:5].sum(),
                            expanded.grad[0, 5]])
        torch.testing.assert_close(values.grad[0], sums)
    with pytest.raises(ValueError, match="n_positives"):
        sorted_nce(runs, 6, 0.3)


def test_sorted_nce_rejects_bad_m():
    with pytest.raises(ValueError, match="n_positives"):
        sorted_nce(torch.zeros(2, 4), 4, 0.1)


def test_sorted_nce_takes_m_as_a_numpy_integer():
    # m from a parameter grid may be a NumPy integer.
    c = torch.randn(5, 9, generator=torch.Generator().manual_seed(0))
    assert sorted_nce(c, np.int64(4), 0.3).item() == pytest.approx(sorted_nce(c, 4, 0.3).item())


def test_code_nt_xent_prefers_matching_views():
    torch.manual_seed(0)
    a = torch.randn(16, 32).sign()
    assert code_nt_xent(a, a, 0.5) < code_nt_xent(a, torch.randn(16, 32).sign(), 0.5)


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


def _one_direction(crit, codes_anchor, z_anchor, codes_other, z_other):
    """SortedNCE of one view's anchors over the other view's candidates, computed alone."""
    scores = hamming_similarity(codes_anchor, codes_other)
    return sorted_nce(crit.sorter(scores, z_anchor @ z_other.T), crit.n_positives, crit.temperature)


@pytest.mark.parametrize("sorter", ["torchsort", "softsort", "none"])
def test_sorted_term_is_the_mean_of_both_directions(sorter):
    # Both directions go through the sorter as one stack of 2n rows; loss and gradients must
    # be those of the two directions computed apart.
    def leaves():
        views = []
        for h, _, z in _views(n=20, bits=16, latent=8, seed=3):
            h = h.clone().requires_grad_(True)
            z = z.clone().requires_grad_(True)
            views.append((h, sign_ste(h), z))
        return views

    crit = NSHLoss(make_sorter(sorter, 16), n_positives=4, temperature=0.2)
    (h_a, b_a, z_a), (h_b, b_b, z_b) = one = leaves()
    stacked = crit.sorted_term(b_a, z_a, b_b, z_b)
    stacked.backward()
    (h_a2, b_a2, z_a2), (h_b2, b_b2, z_b2) = two = leaves()
    apart = 0.5 * (_one_direction(crit, b_a2, z_a2, b_b2, z_b2) + _one_direction(crit, b_b2, z_b2, b_a2, z_a2))
    apart.backward()
    torch.testing.assert_close(stacked, apart)
    for (h1, _, z1), (h2, _, z2) in zip(one, two):
        torch.testing.assert_close(h1.grad, h2.grad)
        torch.testing.assert_close(z1.grad, z2.grad)
    if sorter != "none":  # the codes learn through the sort (NoSort gives them no gradient)
        assert float(h_a.grad.abs().sum()) > 0


def test_nsh_loss_is_the_weighted_sum_of_its_terms():
    (a, b) = _views()
    sorter = make_sorter("softsort", 16)
    weights = dict(sorted_weight=0.3, code_nce_weight=2.0, quantization_weight=0.5)
    loss = NSHLoss(sorter, n_positives=3, temperature=0.2, code_temperature=0.4, **weights)
    alone = {name: NSHLoss(sorter, n_positives=3, temperature=0.2, code_temperature=0.4,
                           **{k: (1.0 if k == name else 0.0) for k in weights})(a, b).item() for name in weights}
    assert alone["sorted_weight"] == pytest.approx(loss.sorted_term(a[1], a[2], b[1], b[2]).item(), rel=1e-6)
    assert alone["code_nce_weight"] == pytest.approx(code_nt_xent(a[1], b[1], 0.4).item(), rel=1e-6)
    expected_q = 0.5 * (quantization_loss(a[0]) + quantization_loss(b[0])).item()
    assert alone["quantization_weight"] == pytest.approx(expected_q, rel=1e-6)
    assert loss(a, b).item() == pytest.approx(sum(weights[k] * alone[k] for k in weights), rel=1e-5)


def test_neighbor_distillation_is_zero_when_the_codes_rank_as_the_inputs():
    from sortedhash.nn.losses import input_similarity, neighbor_distillation

    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 5, generator=g)
    teacher = input_similarity(x)
    torch.testing.assert_close(teacher.diagonal(), torch.ones(12))
    # Codes whose cosine similarities are the inputs', at the teacher's temperature: KL 0.
    assert neighbor_distillation(x, x, teacher, 0.1, 0.1).item() == pytest.approx(0.0, abs=1e-6)
    other = torch.randn(12, 5, generator=g)
    assert neighbor_distillation(other, other, teacher, 0.1, 0.1).item() > 0.1


def test_similarity_preservation_by_hand():
    from sortedhash.nn.losses import similarity_preservation

    # Three samples, each view's codes the same: code cosines 0 (0, 1), -1 (0, 2), 0 (1, 2)
    # against input cosines 0.5, -0.5, 0.1.
    teacher = torch.tensor([[1.0, 0.5, -0.5], [0.5, 1.0, 0.1], [-0.5, 0.1, 1.0]])
    codes = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    # 6 stacked rows, 30 ordered distinct pairs: each sample pair 8 times (two views each,
    # both orders) with gaps 0.5, 0.5 and 0.1; a sample with its other view: cosine 1 = 1.
    expected = 8 * (0.5 ** 2 + 0.5 ** 2 + 0.1 ** 2) / 30 / torch.tensor([0.5, 0.5, -0.5, -0.5, 0.1, 0.1]).var()
    assert similarity_preservation(codes, codes, teacher).item() == pytest.approx(expected.item(), rel=1e-6)


def test_similarity_preservation_is_zero_when_the_codes_keep_the_similarities():
    from sortedhash.nn.losses import input_similarity, similarity_preservation

    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 5, generator=g)
    teacher = input_similarity(x)
    assert similarity_preservation(x, x, teacher).item() == pytest.approx(0.0, abs=1e-6)
    other = torch.randn(12, 5, generator=g, requires_grad=True)
    loss = similarity_preservation(other, other, teacher)
    assert loss.item() > 0.5  # codes that ignore the inputs miss about all of their spread
    loss.backward()
    assert torch.isfinite(other.grad).all() and other.grad.abs().sum() > 0


def test_nsh_loss_similarity_term_needs_the_inputs():
    from sortedhash.nn.losses import input_similarity, similarity_preservation

    a, b = _views()
    inputs = torch.randn(24, 7, generator=torch.Generator().manual_seed(5))
    only = NSHLoss(make_sorter("none", 16), n_positives=1, temperature=0.2, sorted_weight=0.0, code_nce_weight=0.0,
                   similarity_weight=3.0)
    expected = 3.0 * similarity_preservation(a[1], b[1], input_similarity(inputs))
    assert only(a, b, inputs=inputs).item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="similarity_weight"):
        only(a, b)


def test_nsh_loss_neighbor_term_is_both_directions_of_the_distillation():
    from sortedhash.nn.losses import input_similarity, neighbor_distillation

    a, b = _views()
    inputs = torch.randn(24, 7, generator=torch.Generator().manual_seed(5))
    only = NSHLoss(make_sorter("none", 16), n_positives=1, temperature=0.2, sorted_weight=0.0, code_nce_weight=0.0,
                   neighbor_weight=2.0, neighbor_temperature=0.2, neighbor_teacher_temperature=0.1)
    teacher = input_similarity(inputs)
    expected = 2.0 * 0.5 * (neighbor_distillation(a[1], b[1], teacher, 0.2, 0.1)
                            + neighbor_distillation(b[1], a[1], teacher.T, 0.2, 0.1))
    assert only(a, b, inputs=inputs).item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="inputs"):
        only(a, b)
