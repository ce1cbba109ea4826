"""The VAE with attention: shapes, both attention kinds, mean vs sample, the loss, learning."""

from __future__ import annotations

import pytest
import torch

from pressedplay.model import Output, VAEAttention, vae_loss

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_shapes_at_128_pixels():
    model = VAEAttention()
    out = model(torch.rand(4, 3, 128, 128))
    assert out.features.shape == (4, 8)
    assert out.mu.shape == out.logvar.shape == (4, 32)
    assert model.fc_mu.in_features == 128 * 16 * 16


def test_spatial_attention_is_a_distribution_over_all_positions():
    torch.manual_seed(0)
    model = VAEAttention(attention="spatial")
    weights = model.attention_map(model.encoder(torch.rand(2, 3, 128, 128)))
    assert weights.shape == (2, 1, 16, 16)
    torch.testing.assert_close(weights.sum(dim=(1, 2, 3)), torch.ones(2))


def test_height_attention_is_the_original_softmax_over_rows():
    torch.manual_seed(0)
    model = VAEAttention(attention="height")
    weights = model.attention_map(model.encoder(torch.rand(2, 3, 128, 128)))
    torch.testing.assert_close(weights.sum(dim=2), torch.ones(2, 1, 16))  # per column
    assert not torch.allclose(weights.sum(dim=(1, 2, 3)), torch.ones(2))


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="attention"):
        VAEAttention(attention="width")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="multiple of 8"):
        VAEAttention(image_size=100)


def test_inference_uses_the_mean_unless_asked_to_sample():
    torch.manual_seed(0)
    model = VAEAttention().eval()
    images = torch.rand(3, 3, 128, 128)
    with torch.no_grad():
        first, again = model(images), model(images)
        sampled = model(images, sample=True)
    torch.testing.assert_close(first.features, again.features)
    torch.testing.assert_close(first.features, model.decoder(first.mu))
    assert not torch.allclose(sampled.features, first.features)


def test_loss_is_mse_plus_weighted_kl_per_example():
    mu = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    logvar = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    features = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    targets = torch.zeros(2, 2)
    total, reconstruction, kl = vae_loss(Output(features, mu, logvar), targets, kl_weight=0.5)
    # Reconstruction: (1 + 4 + 9 + 16) / 2 examples; KL: 0.5 * (1 + 4) / 2 examples.
    assert reconstruction.item() == pytest.approx(15.0)
    assert kl.item() == pytest.approx(1.25)
    assert total.item() == pytest.approx(15.0 + 0.5 * 1.25)
    zero = vae_loss(Output(targets, torch.zeros(2, 2), torch.zeros(2, 2)), targets)
    assert zero[0].item() == 0.0


@pytest.mark.parametrize("attention", ["spatial", "height"])
def test_it_learns_features_from_image_colour(attention):
    """Redder images have higher targets: a few Adam steps must cut the error."""
    torch.manual_seed(0)
    red = torch.rand(32)
    images = torch.rand(32, 3, 32, 32) * 0.2
    images[:, 0] += red[:, None, None] * 0.8
    targets = (red[:, None] * 2 - 1).repeat(1, 8)
    model = VAEAttention(image_size=32, attention=attention)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)

    def error() -> float:
        with torch.no_grad():
            return torch.mean((model.eval()(images).features - targets) ** 2).item()

    before = error()
    for _ in range(150):
        model.train()
        loss, _, _ = vae_loss(model(images), targets, kl_weight=0.01)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert error() < before / 4
