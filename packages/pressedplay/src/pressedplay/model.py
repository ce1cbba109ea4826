"""The image-to-features VAE with attention, as published in PRESSED / PLAY, with its fixes.

Three 4x4 stride-2 convolutions (3 -> 32 -> 64 -> 128, ReLU) turn a 128x128 image into a
16x16 grid of 128 features; a 1x1 convolution scores each position, a softmax turns the
scores into an attention map, and the features weighted by it feed `fc_mu` and
`fc_logvar` (a 32-d latent). A linear decoder maps the latent to the eight features.

Fixes over the original (see ../shared/reference): the softmax runs over all spatial
positions (`attention="spatial"`, the default) instead of over image height only
(`attention="height"`, kept for comparison); the KL term has a weight; targets are meant
to be standardised features (the loss is the caller's data, see `loader.CoverPairs`).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from pressedplay.features import NAMES

Attention = Literal["spatial", "height"]


class Output(NamedTuple):
    features: torch.Tensor  # (batch, 8): decoded from a sample of the latent, or from mu
    mu: torch.Tensor  # (batch, latent)
    logvar: torch.Tensor  # (batch, latent)


class VAEAttention(nn.Module):
    def __init__(
        self,
        image_size: int = 128,
        num_features: int = len(NAMES),
        latent_dim: int = 32,
        attention: Attention = "spatial",
    ) -> None:
        super().__init__()
        if attention not in ("spatial", "height"):
            raise ValueError(f"attention must be 'spatial' or 'height', not {attention!r}")
        if image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8, not {image_size}")
        self.image_size = image_size
        self.num_features = num_features
        self.latent_dim = latent_dim
        self.attention_kind = attention
        self.encoder = nn.Sequential(
            nn.Conv2d(3, 32, kernel_size=4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(64, 128, kernel_size=4, stride=2, padding=1),
            nn.ReLU(),
        )
        grid = image_size // 8
        self.positions = grid * grid
        hidden = 128 * self.positions
        self.attention = nn.Conv2d(128, 1, kernel_size=1)
        self.fc_mu = nn.Linear(hidden, latent_dim)
        self.fc_logvar = nn.Linear(hidden, latent_dim)
        self.decoder = nn.Linear(latent_dim, num_features)

    def architecture(self) -> dict:
        """The constructor arguments: enough, with the weights, to rebuild this model."""
        return {
            "image_size": self.image_size,
            "num_features": self.num_features,
            "latent_dim": self.latent_dim,
            "attention": self.attention_kind,
        }

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, 1, grid, grid) weights for the encoder's output positions."""
        scores = self.attention(x)
        if self.attention_kind == "height":  # the original's softmax(dim=2)
            return torch.softmax(scores, dim=2)
        batch, _, height, width = scores.shape
        weights = torch.softmax(scores.reshape(batch, -1), dim=1)
        return weights.reshape(batch, 1, height, width)

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.encoder(images)
        weights = self.attention_map(x)
        if self.attention_kind == "spatial":
            # Weights sum to 1 over all positions: scale so that uniform attention leaves
            # the features as they are, instead of shrinking them 256-fold at 128 px.
            weights = weights * self.positions
        x = (x * weights).flatten(1)
        return self.fc_mu(x), self.fc_logvar(x)

    def forward(self, images: torch.Tensor, sample: bool | None = None) -> Output:
        """Decode a sample of the latent (training, or `sample=True`), else its mean."""
        mu, logvar = self.encode(images)
        if sample is None:
            sample = self.training
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
        return Output(self.decoder(z), mu, logvar)


def vae_loss(
    output: Output, targets: torch.Tensor, kl_weight: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, reconstruction, KL), each summed over dimensions and averaged over the batch.

    The original summed over the batch too, which ties the learning rate to the batch size.
    """
    reconstruction = F.mse_loss(output.features, targets, reduction="none").sum(1).mean()
    kl = (-0.5 * (1 + output.logvar - output.mu.pow(2) - output.logvar.exp())).sum(1).mean()
    return reconstruction + kl_weight * kl, reconstruction, kl
