"""The level-grouped gathers must equal the dense n^3 soft gather, values and gradients."""

import pytest
import torch

from sortedhash.nn.gather import anchored_soft_gather, grid_level_gather, grid_soft_gather


def _dense(anchors, scores, values, tau):
    P = torch.softmax(-(anchors[:, :, None] - scores[:, None, :]).abs() / tau, dim=2)
    return torch.einsum("ikj,ij->ik", P, values)


def _problem(n, n_bits, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, 2, (n, n_bits), generator=g).double() * 2 - 1
    b = torch.randint(0, 2, (n, n_bits), generator=g).double() * 2 - 1
    scores = (a @ b.T) / (2 * n_bits) + 0.5
    values = torch.randn(n, n, generator=g, dtype=torch.float64)
    return scores, values, torch.randn(n, n, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("n, n_bits, tau_steps", [(10, 8, 1.0), (17, 16, 0.5), (12, 4, 3.0)])
def test_grid_gather_matches_dense_softsort(n, n_bits, tau_steps):
    scores, values, upstream = _problem(n, n_bits, seed=n)
    tau = tau_steps / n_bits
    s1, v1 = scores.clone().requires_grad_(), values.clone().requires_grad_()
    s2, v2 = scores.clone().requires_grad_(), values.clone().requires_grad_()
    out = grid_soft_gather(s1, v1, n_levels=n_bits + 1, temperature=tau)
    ref = _dense(s2, s2, v2, tau)  # each sample anchors its own position
    torch.testing.assert_close(out, ref)
    (out * upstream).sum().backward()
    (ref * upstream).sum().backward()
    torch.testing.assert_close(s1.grad, s2.grad)
    torch.testing.assert_close(v1.grad, v2.grad)
    assert s1.grad.abs().sum() > 0  # the sorter does pass gradients to the scores


@pytest.mark.parametrize("n, n_bits, k, on_grid", [(9, 8, 9, False), (14, 16, 5, False), (11, 8, 11, True)])
def test_anchored_gather_matches_dense(n, n_bits, k, on_grid):
    scores, values, _ = _problem(n, n_bits, seed=k)
    if on_grid:  # anchors exactly on levels, 0 and 1 included: the kernel's kinks
        anchors = torch.randint(0, n_bits + 1, (n, k), generator=torch.Generator().manual_seed(1)).double() / n_bits
        anchors[0, 0], anchors[0, 1] = 0.0, 1.0
    else:
        anchors = torch.rand(n, k, dtype=torch.float64)
    upstream = torch.randn(n, k, dtype=torch.float64)
    a1, s1, v1 = (t.clone().requires_grad_() for t in (anchors, scores, values))
    a2, s2, v2 = (t.clone().requires_grad_() for t in (anchors, scores, values))
    out = anchored_soft_gather(a1, s1, v1, n_levels=n_bits + 1, temperature=1.0 / n_bits)
    ref = _dense(a2, s2, v2, 1.0 / n_bits)
    torch.testing.assert_close(out, ref)
    (out * upstream).sum().backward()
    (ref * upstream).sum().backward()
    for mine, dense in [(a1, a2), (s1, s2), (v1, v2)]:
        torch.testing.assert_close(mine.grad, dense.grad)


def test_gather_shape_errors():
    with pytest.raises(ValueError, match="one shape"):
        grid_soft_gather(torch.zeros(3, 3), torch.zeros(3, 4), n_levels=5, temperature=0.1)


def test_anchored_gather_float32_path_matches_float64_reference():
    """Float32 input is computed in float32 (the fast path) while 1 / tau < 80."""
    scores, values, upstream = _problem(64, 64, seed=5)
    anchors = torch.rand(64, 64, dtype=torch.float64)
    a1, s1, v1 = (t.float().requires_grad_() for t in (anchors, scores, values))
    a2, s2, v2 = (t.clone().requires_grad_() for t in (anchors, scores, values))
    out = anchored_soft_gather(a1, s1, v1, n_levels=65, temperature=1 / 64)
    ref = _dense(a2, s2, v2, 1 / 64)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, atol=1e-4, rtol=1e-4)
    (out * upstream.float()).sum().backward()
    (ref * upstream).sum().backward()
    for mine, dense in [(a1, a2), (s1, s2), (v1, v2)]:
        torch.testing.assert_close(mine.grad.double(), dense.grad, atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("n, n_bits", [(10, 8), (17, 16), (12, 4), (40, 64)])
def test_level_runs_are_the_sorted_grid_gather(n, n_bits):
    scores, values, _ = _problem(n, n_bits, seed=n + 1)
    runs = grid_level_gather(scores, values, n_levels=n_bits + 1, temperature=1.0 / n_bits)
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    by_sample = grid_soft_gather(scores, values, n_levels=n_bits + 1, temperature=1.0 / n_bits)
    assert runs.length == n and runs.values.shape == runs.counts.shape == (n, n_bits + 1)
    torch.testing.assert_close(runs.counts.sum(1), torch.full((n,), float(n), dtype=runs.counts.dtype))
    torch.testing.assert_close(runs.dense(), by_sample.gather(1, order))


def test_level_runs_gradient_is_the_grid_gather_fed_each_level_its_mean_gradient():
    # The runs' backward shares a level's gradient evenly among its samples: the grid
    # gather given, at every sample, the mean upstream gradient of its level's positions.
    n, n_bits = 30, 8
    scores, values, _ = _problem(n, n_bits, seed=2)
    g_runs = torch.randn(n, n_bits + 1, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    s1, v1 = scores.clone().requires_grad_(), values.clone().requires_grad_()
    runs = grid_level_gather(s1, v1, n_levels=n_bits + 1, temperature=1.0 / n_bits)
    (runs.values * g_runs).sum().backward()

    s2, v2 = scores.clone().requires_grad_(), values.clone().requires_grad_()
    by_sample = grid_soft_gather(s2, v2, n_levels=n_bits + 1, temperature=1.0 / n_bits)
    level = torch.round(scores * n_bits).long()
    counts = runs.counts.flip(1)  # level order
    per_sample = (g_runs.flip(1) / counts.clamp_min(1)).gather(1, level)
    (by_sample * per_sample).sum().backward()
    torch.testing.assert_close(s1.grad, s2.grad)
    torch.testing.assert_close(v1.grad, v2.grad)
    assert s1.grad.abs().sum() > 0
