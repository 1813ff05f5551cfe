import pytest
import torch

from sortedhash.nn import FeatureNoise


def test_feature_noise_adds_noise_of_the_given_scale():
    torch.manual_seed(0)
    x = torch.zeros(20000, 8)
    out = FeatureNoise(noise_std=0.5, dropout=0.0)(x)
    assert out.std().item() == pytest.approx(0.5, rel=0.02) and abs(out.mean().item()) < 0.01


def test_feature_dropout_zeroes_and_rescales():
    torch.manual_seed(0)
    x = torch.ones(20000, 8)
    out = FeatureNoise(noise_std=0.0, dropout=0.25)(x)
    kept = out != 0
    assert kept.float().mean().item() == pytest.approx(0.75, abs=0.01)
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], 1 / 0.75))


def test_no_noise_no_dropout_is_the_identity_and_the_input_is_kept():
    x = torch.randn(5, 3)
    before = x.clone()
    assert torch.equal(FeatureNoise(0.0, 0.0)(x), x)
    FeatureNoise(0.5, 0.5)(x)
    assert torch.equal(x, before)
