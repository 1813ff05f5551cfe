"""The level-grouped gathers must equal the dense n^3 soft gather, values and gradients."""

import pytest
import torch

from sortedhash.nn.gather import anchored_soft_gather, grid_soft_gather


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


@pytest.mark.parametrize("n, n_bits, k", [(9, 8, 9), (14, 16, 5)])
def test_anchored_gather_matches_dense(n, n_bits, k, monkeypatch):
    import sortedhash.nn.gather as gather

    monkeypatch.setattr(gather, "_MAX_CHUNK_ELEMENTS", 50)  # exercise the row chunking
    scores, values, _ = _problem(n, n_bits, seed=k)
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
