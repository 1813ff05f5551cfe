import torch

from sortedhash.nn import HashingNetwork, MLPBackbone, sign_ste


def test_sign_ste_is_binary_with_identity_gradient():
    h = torch.tensor([-0.3, 0.0, 0.7], requires_grad=True)
    b = sign_ste(h)
    assert b.tolist() == [-1.0, 1.0, 1.0]
    b.sum().backward()
    assert h.grad.tolist() == [1.0, 1.0, 1.0]


def test_mlp_backbone_widths():
    backbone = MLPBackbone(7, (32, 16))
    assert backbone.out_features == 16
    assert [m.out_features for m in backbone if isinstance(m, torch.nn.Linear)] == [32, 16]
    assert MLPBackbone(7, ()).out_features == 7  # no hidden layer: the heads see the input


def test_hashing_network_outputs_and_codes():
    torch.manual_seed(0)
    net = HashingNetwork(MLPBackbone(6, (20,)), 20, n_bits=12, latent_dim=5)
    x = torch.randn(9, 6)
    h, b, z = net(x)
    assert h.shape == b.shape == (9, 12) and z.shape == (9, 5)
    assert torch.all(h.abs() < 1) and torch.equal(b, torch.where(h >= 0, 1.0, -1.0))
    torch.testing.assert_close(z.norm(dim=1), torch.ones(9))
    codes = net.encode(x)
    assert codes.dtype == torch.bool and torch.equal(codes, b > 0)
    assert not codes.requires_grad
