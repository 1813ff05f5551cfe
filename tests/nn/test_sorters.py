import pytest
import torch
import torch.nn.functional as F

from sortedhash.nn import HashingNetwork, LevelRuns, MLPBackbone, NoSort, SoftSort, TorchsortSorter, sorted_nce
from sortedhash.nn.losses import hamming_similarity


def _scores(n=12, n_bits=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, 2, (n, n_bits), generator=g).float() * 2 - 1
    b = torch.randint(0, 2, (n, n_bits), generator=g).float() * 2 - 1
    return hamming_similarity(a, b)


def _hard_permutation(scores):
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    return F.one_hot(order, scores.shape[1]).float()


SORTERS = {
    "softsort": lambda n_bits, s: SoftSort(n_bits, temperature=s),
    "torchsort": lambda n_bits, s: TorchsortSorter(n_bits, temperature=s, regularization_strength=s),
}


@pytest.mark.parametrize("name", SORTERS)
def test_soft_permutation_is_row_stochastic(name):
    scores = _scores()
    P = SORTERS[name](16, 1.0).soft_permutation(scores)
    assert P.shape == (12, 12, 12)
    assert torch.all(P >= 0)
    torch.testing.assert_close(P.sum(dim=2), torch.ones(12, 12))


@pytest.mark.parametrize("name", SORTERS)
def test_soft_permutation_tends_to_hard_sort(name):
    # Distinct similarities, so the hard permutation is unique.
    scores = torch.stack([torch.randperm(17)[:12].float() / 16 for _ in range(12)])
    hard = _hard_permutation(scores)
    errors = [
        (SORTERS[name](16, s).soft_permutation(scores) - hard).abs().max().item()
        for s in (2.0, 0.5, 0.05, 0.005)
    ]
    assert errors[-1] < 1e-4
    assert errors == sorted(errors, reverse=True) and errors[0] > 0.1


@pytest.mark.parametrize("name", SORTERS)
def test_sorted_gather_equals_dense_permutation(name):
    scores = _scores(seed=3)
    values = torch.randn(12, 12)
    sorter = SORTERS[name](16, 1.0)
    expected = torch.einsum("ikj,ij->ik", sorter.soft_permutation(scores), values)
    torch.testing.assert_close(sorter(scores, values), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", SORTERS)
def test_gradient_reaches_the_hash_head_through_the_sorter(name):
    torch.manual_seed(0)
    net = HashingNetwork(MLPBackbone(8, (32,)), 32, n_bits=16, latent_dim=8)
    x = torch.randn(20, 8)
    h_a, b_a, z_a = net(x)
    h_b, b_b, z_b = net(x + 0.1 * torch.randn_like(x))
    # The latent vectors are detached: only the sorter links the loss to the hash head.
    c_sorted = SORTERS[name](16, 1.0)(hamming_similarity(b_a, b_b), (z_a @ z_b.T).detach())
    sorted_nce(c_sorted, 3, 0.2).backward()
    assert net.hash_head.weight.grad is not None
    assert net.hash_head.weight.grad.abs().sum() > 0


def test_nosort_with_one_positive_is_infonce():
    torch.manual_seed(0)
    C = torch.randn(10, 10)
    scores = _scores(10)
    loss = sorted_nce(NoSort()(scores, C), 1, 0.3)
    torch.testing.assert_close(loss, F.cross_entropy(C / 0.3, torch.arange(10)))
    P = NoSort().soft_permutation(scores)
    torch.testing.assert_close(torch.einsum("ikj,ij->ik", P, C), NoSort()(scores, C))


def test_torchsort_anchors_are_the_hard_sort_up_to_unit_strength_and_smooth_above_n_bits():
    # Similarities live in [0, 1]: torchsort's l2 soft sort moves a sorted value only where
    # its gap to a neighbour exceeds about 1 / regularization_strength.
    pytest.importorskip("torchsort")
    n_bits = 16
    scores = _scores(n=64, n_bits=n_bits, seed=3)
    hard = torch.sort(scores, dim=1, descending=True).values
    for strength in (0.1, 1.0):
        anchors = TorchsortSorter(n_bits, regularization_strength=strength).soft_sorted(scores)
        torch.testing.assert_close(anchors, hard)
    smooth = TorchsortSorter(n_bits, regularization_strength=4.0 * n_bits).soft_sorted(scores)
    assert (smooth - hard).abs().max() > 0.5 / n_bits
    torch.testing.assert_close(smooth.sum(1), hard.sum(1))  # a soft sort keeps each row's sum


def _tied_problem(n=48, n_bits=8, seed=5):
    """Random +-1 codes of few bits (many ties), latent similarities and an upstream gradient."""
    g = torch.Generator().manual_seed(seed)
    codes_a = torch.randint(0, 2, (n, n_bits), generator=g).double() * 2 - 1
    codes_b = torch.randint(0, 2, (n, n_bits), generator=g).double() * 2 - 1
    values = torch.randn(n, n, generator=g, dtype=torch.float64)
    upstream = torch.randn(n, n, generator=g, dtype=torch.float64)
    return hamming_similarity(codes_a, codes_b), values, upstream


def _output_and_score_gradient(sorter, scores, values, upstream):
    scores = scores.clone().requires_grad_()
    out = sorter(scores, values)
    (out * upstream).sum().backward()
    return out.detach(), scores.grad


def _group_sums(grad, scores, n_bits):
    levels = torch.round(scores * n_bits).long()
    return torch.zeros(grad.shape[0], n_bits + 1, dtype=grad.dtype).scatter_add_(1, levels, grad)


def test_tie_split_changes_only_how_tied_candidates_share_the_gradient():
    # At regularization_strength=1 both sorters anchor the kernel at the hard-sorted
    # similarities: same outputs, same gradient summed over each tie group. Each sort's own
    # assignment of tied positions differs; the even split makes the gradients equal.
    pytest.importorskip("torchsort")
    n_bits = 8
    scores, values, upstream = _tied_problem(n_bits=n_bits)
    runs = {
        (name, split): _output_and_score_gradient(make(n_bits, split_ties=split), scores, values, upstream)
        for name, make in [("softsort", SoftSort), ("torchsort", TorchsortSorter)]
        for split in (False, True)
    }
    reference_out, reference_grad = runs["softsort", False]
    for out, grad in runs.values():
        torch.testing.assert_close(out, reference_out)
        torch.testing.assert_close(_group_sums(grad, scores, n_bits), _group_sums(reference_grad, scores, n_bits))
    assert not torch.allclose(runs["softsort", False][1], runs["torchsort", False][1])
    assert not torch.allclose(runs["softsort", True][1], runs["softsort", False][1])
    torch.testing.assert_close(runs["softsort", True][1], runs["torchsort", True][1])


@pytest.mark.parametrize("name", SORTERS)
def test_even_tie_split_equals_dense_autograd_fed_the_group_mean_gradient(name):
    # Tied positions hold equal values, so a dense soft permutation fed the same upstream
    # gradient at every tied position assigns it in no particular order: the reference.
    n_bits = 8
    scores, values, upstream = _tied_problem(n_bits=n_bits, seed=7)
    sorter = SORTERS[name](n_bits, 1.0)
    assert sorter.split_ties
    sorted_levels = torch.round(torch.sort(scores, dim=1, descending=True).values * n_bits).long()
    sums = torch.zeros(len(scores), n_bits + 1, dtype=upstream.dtype).scatter_add_(1, sorted_levels, upstream)
    counts = torch.zeros_like(sums).scatter_add_(1, sorted_levels, torch.ones_like(upstream))
    mean_upstream = (sums / counts.clamp_min(1)).gather(1, sorted_levels)

    dense_scores = scores.clone().requires_grad_()
    dense = torch.einsum("ikj,ij->ik", sorter.soft_permutation(dense_scores), values)
    (dense * mean_upstream).sum().backward()
    out, grad = _output_and_score_gradient(sorter, scores, values, upstream)
    torch.testing.assert_close(out, dense.detach())
    torch.testing.assert_close(grad, dense_scores.grad)


@pytest.mark.parametrize("name", SORTERS)
def test_gradient_does_not_depend_on_the_order_of_candidates(name):
    n_bits = 8
    scores, values, upstream = _tied_problem(n_bits=n_bits, seed=11)
    perm = torch.randperm(scores.shape[1], generator=torch.Generator().manual_seed(0))
    sorter = SORTERS[name](n_bits, 1.0)
    out, grad = _output_and_score_gradient(sorter, scores, values, upstream)
    out_p, grad_p = _output_and_score_gradient(sorter, scores[:, perm], values[:, perm], upstream)
    torch.testing.assert_close(out_p, out)  # sorted lists do not see the candidates' order
    torch.testing.assert_close(grad_p, grad[:, perm])


@pytest.mark.parametrize("name", SORTERS)
def test_sorted_list_is_the_sorted_lists_as_runs_with_the_same_loss_and_gradients(name):
    # Training reads sorted_list: the same SortedNCE and gradients as the dense lists.
    n_bits = 8
    scores, values, _ = _tied_problem(n_bits=n_bits, seed=13)
    sorter = SORTERS[name](n_bits, 1.0)
    grads = []
    for form in (sorter, sorter.sorted_list):
        s, v = scores.clone().requires_grad_(), values.clone().requires_grad_()
        out = form(s, v)
        loss = sorted_nce(out, 5, 0.2)
        loss.backward()
        grads.append((out, loss.detach(), s.grad, v.grad))
    (dense, *reference), (runs, *mine) = grads
    assert isinstance(runs, LevelRuns) and isinstance(dense, torch.Tensor)
    torch.testing.assert_close(runs.dense().detach(), dense.detach())
    for a, b in zip(mine, reference):
        torch.testing.assert_close(a, b)


def test_sorted_list_is_dense_where_runs_would_change_the_result():
    scores, values, _ = _tied_problem(n_bits=8, seed=17)
    # Each sort's own assignment of tied positions, or torchsort's anchors off the grid.
    for sorter in (SoftSort(8, split_ties=False), TorchsortSorter(8, split_ties=False),
                   TorchsortSorter(8, regularization_strength=4.0)):
        out = sorter.sorted_list(scores, values)
        assert isinstance(out, torch.Tensor)
        torch.testing.assert_close(out, sorter(scores, values))
    assert isinstance(NoSort().sorted_list(scores, values), torch.Tensor)
