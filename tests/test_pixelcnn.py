"""PixelCNN decoder: autoregressive masking, z conditioning, the decoder contract."""

import torch

from vaelab.models import ModelConfig, build_model
from vaelab.models.pixelcnn import MaskedConv2d, PixelCNNDecoder


def _model(latent_dim=3):
    cfg = ModelConfig(type="pixelcnn", latent_dim=latent_dim, channels=[8, 8], pixelcnn_channels=8, pixelcnn_layers=2)
    return build_model(cfg, {"image_shape": (1, 8, 8)})


def test_mask_a_excludes_centre_and_future_mask_b_includes_centre():
    a, b = MaskedConv2d("A", 1, 1, 3).mask[0, 0], MaskedConv2d("B", 1, 1, 3).mask[0, 0]
    assert a.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert b.tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]


def test_logits_at_a_pixel_do_not_depend_on_that_pixel_or_later_ones():
    torch.manual_seed(0)
    dec: PixelCNNDecoder = _model().decoder
    z = torch.randn(1, 3)
    x = torch.rand(1, 1, 8, 8).bernoulli().requires_grad_(True)
    for i, j in [(0, 0), (3, 4), (7, 7)]:
        x.grad = None
        dec.logits(x, z)[0, 0, i, j].backward()
        g = x.grad[0, 0].abs()
        flat = g.flatten()
        k = i * 8 + j
        assert torch.all(flat[k:] == 0), (i, j)  # the pixel itself and everything after it: no influence
        if k > 0:
            assert flat[:k].sum() > 0  # the past does matter


def test_z_conditions_the_likelihood_and_contract_shapes():
    torch.manual_seed(0)
    m = _model()
    x = torch.rand(4, 1, 8, 8).bernoulli()
    q = m.encode(x)
    assert q.mu.shape == (4, 3)
    z1, z2 = torch.zeros(4, 3), 3 * torch.ones(4, 3)
    assert not torch.allclose(m.log_likelihood(x, z1), m.log_likelihood(x, z2))
    zs = torch.randn(5, 4, 3)
    batched = m.log_likelihood(x, zs)
    assert batched.shape == (5, 4)
    assert torch.allclose(batched, torch.stack([m.log_likelihood(x, zs[s]) for s in range(5)]), atol=1e-4)


def test_sampling_is_binary_and_normalised_likelihood():
    torch.manual_seed(0)
    m = _model(latent_dim=2)
    s = m.decoder.sample(torch.randn(2, 2))
    assert s.shape == (2, 1, 8, 8) and set(s.unique().tolist()) <= {0.0, 1.0}
    # a proper distribution over 2^4 images: check on a 2x2 decoder that probabilities sum to one
    small = build_model(
        ModelConfig(type="pixelcnn", latent_dim=2, channels=[4], pixelcnn_channels=4, pixelcnn_layers=1),
        {"image_shape": (1, 2, 2)},
    )
    imgs = torch.tensor([[(k >> b) & 1 for b in range(4)] for k in range(16)], dtype=torch.float32).view(16, 1, 2, 2)
    z = torch.randn(1, 2).expand(16, 2)
    total = torch.logsumexp(small.log_likelihood(imgs, z), 0)
    assert abs(total.item()) < 1e-5
