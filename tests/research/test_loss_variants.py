"""research/loss_variants.py: the tried loss switches, reached through the estimator's hook."""

import math

import numpy as np
import pytest
import torch

from sortedhash import NSHTransformer
from sortedhash.nn import NSHLoss, code_nt_xent, make_sorter, sorted_nce

from ..nn.test_losses import _views
from .conftest import load_script

lv = load_script("research", "loss_variants")


def test_sorted_nce_with_several_m_is_the_mean_over_them():
    c = torch.randn(5, 9, generator=torch.Generator().manual_seed(0))
    expected = (sorted_nce(c, 1, 0.3) + sorted_nce(c, 4, 0.3) + sorted_nce(c, 8, 0.3)) / 3
    assert lv.sorted_nce_several(c, (1, 4, 8), 0.3).item() == pytest.approx(expected.item(), rel=1e-6)
    assert lv.sorted_nce_several(c, np.int64(4), 0.3).item() == pytest.approx(sorted_nce(c, 4, 0.3).item())
    with pytest.raises(ValueError, match="n_positives=9"):
        lv.sorted_nce_several(c, (2, 9), 0.3)


def test_code_nt_xent_spared_samples_leave_the_negatives():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 16, generator=g).sign(), torch.randn(6, 16, generator=g).sign()
    none = torch.zeros(6, 6, dtype=torch.bool)
    assert lv.code_nt_xent_spared(a, b, 0.5, (none, none)).item() == pytest.approx(code_nt_xent(a, b, 0.5).item())
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
    result = lv.code_nt_xent_spared(a, b, 0.5, (spared_a, spared_b)).item()
    assert result == pytest.approx(sum(rows) / 12, rel=1e-5)


def test_variant_loss_defaults_are_nsh_loss():
    a, b = _views()
    sorter = make_sorter("softsort", 16)
    params = dict(n_positives=3, temperature=0.2, sorted_weight=0.5, code_nce_weight=1.0)
    assert lv.VariantLoss(sorter, **params)(a, b).item() == pytest.approx(NSHLoss(sorter, **params)(a, b).item())
    one_way = lv.VariantLoss(sorter, symmetric=False, **params)(a, b).item()
    assert one_way != pytest.approx(NSHLoss(sorter, **params)(a, b).item(), rel=1e-4)


def test_latent_nce_term_is_nt_xent_of_latents():
    a, b = _views()
    loss = lv.VariantLoss(make_sorter("none", 16), n_positives=1, temperature=0.2, sorted_weight=0.0,
                          code_nce_weight=0.0, latent_nce_weight=2.0, code_temperature=0.3)
    assert loss(a, b).item() == pytest.approx(2.0 * code_nt_xent(a[2], b[2], 0.3).item(), rel=1e-6)


def test_gather_codes_uses_normalised_relaxed_codes():
    a, b = _views()
    sorter = make_sorter("softsort", 16)
    on_codes = lv.VariantLoss(sorter, n_positives=3, temperature=0.2, gather="codes")
    as_latent = NSHLoss(sorter, n_positives=3, temperature=0.2)
    swap = [(h, c, torch.nn.functional.normalize(h, dim=1)) for h, c, _ in (a, b)]
    assert on_codes(a, b).item() == pytest.approx(as_latent(*swap).item(), rel=1e-6)
    with pytest.raises(ValueError, match="gather"):
        lv.VariantLoss(sorter, n_positives=1, temperature=0.2, gather="inputs")


def test_spare_sorted_positives_takes_each_anchors_first_m_out_of_the_negatives():
    a, b = _views(n=10)
    loss = lv.VariantLoss(make_sorter("none", 16), n_positives=(2, 3), temperature=0.2, sorted_weight=0.0,
                          code_nce_weight=1.0, code_temperature=0.5, spare_sorted_positives=True)
    distance_ab = torch.cdist(a[1], b[1], p=1)  # ranks as the Hamming distance between the codes
    masks = loss.sorted_positives(a[1], b[1])
    for mask, d in zip(masks, (distance_ab, distance_ab.T)):
        nearest = torch.argsort(d + 1e-3 * torch.arange(10.0), dim=1, stable=True)[:, :3]  # the largest m
        expected = torch.zeros(10, 10, dtype=torch.bool).scatter_(1, nearest, True)
        t = d.sort(dim=1).values[:, 2:4]
        untied = t[:, 0] < t[:, 1]  # rows where the 3rd and 4th nearest are not tied
        assert torch.equal(mask[untied], expected[untied]) and mask.sum(1).tolist() == [3] * 10
    assert loss(a, b).item() == pytest.approx(lv.code_nt_xent_spared(a[1], b[1], 0.5, masks).item(), rel=1e-6)
    assert loss(a, b).item() < code_nt_xent(a[1], b[1], 0.5).item()  # fewer negatives


def test_nsh_with_loss_trains_through_the_hook():
    X = np.random.RandomState(0).randn(64, 6).astype(np.float32)
    estimator = lv.nsh_with_loss(gather="codes", n_positives=(2, 4))
    model = estimator(n_bits=8, max_epochs=1, batch_size=32, hidden_sizes=(16,), latent_dim=8,
                      random_state=0).fit(X)
    assert model.transform(X).shape == (64, 1)
    assert isinstance(model.net_.criterion_, lv.VariantLoss)
    assert model.net_.criterion_.gather == "codes" and model.net_.criterion_.n_positives == (2, 4)
    plain = NSHTransformer(n_bits=8, max_epochs=1, batch_size=32, hidden_sizes=(16,), latent_dim=8,
                           random_state=0).fit(X)
    assert type(plain.net_.criterion_) is NSHLoss  # the library's own classes are untouched


def test_script_compares_the_defaults_with_a_variant():
    import os
    import subprocess
    import sys

    from .conftest import ROOT

    cmd = [sys.executable, str(ROOT / "research" / "loss_variants.py"), "--params", '{"n_positives": [2, 4]}',
           "--bits", "16", "--epochs", "1", "--seeds", "1"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["defaults", "variant"]
    assert all(0 < float(line.split()[2]) <= 1 for line in lines)


def test_neighbor_terms_try_adds_its_terms_through_the_hooks():
    nt = load_script("research", "neighbor_terms")
    X = np.random.RandomState(0).randn(64, 6).astype(np.float32)
    small = dict(n_bits=8, max_epochs=1, batch_size=32, hidden_sizes=(16,), latent_dim=8, random_state=0)
    model = nt.nsh_with_sorted_term(weight=2.0)(**small).fit(X)
    criterion = model.net_.criterion_
    assert isinstance(criterion, nt.SortedNeighborLoss) and criterion.weight == 2.0
    views = [(torch.tanh(v), torch.sign(v), torch.nn.functional.normalize(v, dim=1))
             for v in (torch.randn(10, 8), torch.randn(10, 8))]
    inputs = torch.randn(10, 6)
    assert criterion(*views, inputs=inputs).item() > NSHLoss.forward(criterion, *views).item()
    clean = nt.nsh_with_clean_student(3.0)(**small).fit(X)
    assert isinstance(clean.net_, nt.CleanStudentNet) and clean.net_.weight == 3.0
    assert np.isfinite(clean.history_[-1, "train_loss"])


def test_neighbor_terms_groups_batches_from_neighbourhoods():
    nt = load_script("research", "neighbor_terms")
    # Three well-separated clusters of ten rows: a row's five nearest are in its cluster.
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.randn(10, 4) * 0.01 + 10 * np.eye(4)[c] for c in range(3)]).astype(np.float32)
    kwargs = nt.neighbourhood_batches(X, group=4, n_neighbors=5)
    sampler = kwargs["iterator_train__sampler"]
    assert kwargs["iterator_train__shuffle"] is False and len(sampler) == 30
    torch.manual_seed(0)
    order = list(sampler)
    assert sorted(order) == list(range(30))  # every row once an epoch
    # Each group is an anchor and neighbours not drawn yet: walk the order and check each
    # run of a group stays in the anchor's cluster (a group ends early when they run out).
    cluster = np.arange(30) // 10
    used, i, groups = set(), 0, 0
    while i < 30:
        anchor = order[i]
        free = [int(j) for j in sampler.neighbours[anchor] if j not in used]
        members = order[i:i + 1 + min(3, len(free))]
        assert set(members[1:]) <= set(free) and set(cluster[members]) == {cluster[anchor]}
        used.update(members)
        i, groups = i + len(members), groups + 1
    assert groups < 30  # groups, not single rows
    torch.manual_seed(0)
    assert list(sampler) == order  # the draw follows torch's random state
    small = dict(n_bits=8, max_epochs=1, batch_size=8, hidden_sizes=(16,), latent_dim=8, random_state=0,
                 mix_neighbors=0)
    model = NSHTransformer(net_kwargs=kwargs, **small).fit(X)
    assert model.net_.get_iterator(model.net_.get_dataset(X), training=True).sampler is sampler
