import pytest
import torch

from vaelab.models import MODELS, ModelConfig, build_model


@pytest.mark.parametrize("mtype", ["mlp", "conv", "linear"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 8, 8)])
def test_contract_shapes(mtype, shape):
    lik = "gaussian" if mtype == "linear" else "bernoulli"
    m = build_model(
        ModelConfig(type=mtype, latent_dim=3, hidden=[16], channels=[4, 8], likelihood=lik),
        {"image_shape": shape},
    )
    x = torch.rand(5, *shape).bernoulli()
    q = m.encode(x)
    assert q.mu.shape == (5, 3) and q.logvar.shape == (5, 3)
    assert m.log_likelihood(x, q.rsample()).shape == (5,)
    assert m.log_likelihood(x, q.rsample(4)).shape == (4, 5)
    assert m.sample(2).shape == (2, *shape)
    assert m.reconstruct(x).shape == x.shape


def test_multi_sample_log_prob_equals_per_sample_loop():
    torch.manual_seed(0)
    m = build_model(ModelConfig(type="mlp", latent_dim=3, hidden=[16]), {"image_shape": (1, 4, 4)})
    x = torch.rand(6, 1, 4, 4).bernoulli()
    z = torch.randn(5, 6, 3)
    batched = m.log_likelihood(x, z)
    loop = torch.stack([m.log_likelihood(x, z[s]) for s in range(5)])
    assert torch.allclose(batched, loop, atol=1e-5)


def test_bernoulli_log_prob_known_answer():
    # logits 0 everywhere -> p = 1/2 for every pixel -> log p(x|z) = -P ln 2 for any binary x.
    m = build_model(ModelConfig(type="mlp", latent_dim=2, hidden=[4]), {"image_shape": (1, 3, 3)})
    for p in m.decoder.parameters():
        torch.nn.init.zeros_(p)
    x = torch.rand(4, 1, 3, 3).bernoulli()
    assert torch.allclose(m.log_likelihood(x, torch.randn(4, 2)), torch.full((4,), -9 * torch.log(torch.tensor(2.0))))


def test_pca_exact_marginal_matches_monte_carlo_integral():
    torch.manual_seed(0)
    m = build_model(
        ModelConfig(type="linear", latent_dim=2, likelihood="gaussian", gaussian_std=0.7),
        {"image_shape": (1, 1, 3)},
    )
    x = torch.randn(3, 1, 1, 3)
    exact = m.decoder.exact_log_marginal(x)
    z = torch.randn(400_000, 1, 2)
    mc = torch.logsumexp(m.log_likelihood(x, z.expand(-1, 3, -1)).double(), 0) - torch.log(torch.tensor(4e5))
    assert torch.allclose(mc.float(), exact, atol=0.02)


def test_unknown_model_type_lists_choices():
    with pytest.raises(KeyError, match="mlp"):
        build_model(ModelConfig(type="resnet9000"), {"image_shape": (1, 4, 4)})
    assert {"mlp", "conv", "linear"} <= set(MODELS.names())
