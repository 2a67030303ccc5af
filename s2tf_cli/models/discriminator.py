"""D: multi-scale patch discriminator (pix2pixHD, Wang et al. 2018), used for L_adv in training only."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import DiscriminatorConfig


class PatchDiscriminator(nn.Module):
    """(B, 3, H, W) -> list of intermediate feature maps; the last is the (B, 1, h, w) realness map."""

    def __init__(self, channels: list[int]):
        super().__init__()
        layers, cin = [], 3
        for i, cout in enumerate(channels):
            stride = 2 if i < len(channels) - 1 else 1
            norm = nn.InstanceNorm2d(cout) if i > 0 else nn.Identity()
            layers.append(nn.Sequential(nn.Conv2d(cin, cout, 4, stride, 2), norm, nn.LeakyReLU(0.2, True)))
            cin = cout
        layers.append(nn.Conv2d(cin, 1, 4, 1, 2))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return feats


class MultiScaleDiscriminator(nn.Module):
    """One patch discriminator per scale (full, 1/2, 1/4 ...): list over scales of feature lists."""

    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        self.scales = nn.ModuleList(PatchDiscriminator(cfg.channels) for _ in range(cfg.scales))

    def forward(self, image: torch.Tensor) -> list[list[torch.Tensor]]:
        outputs = []
        for i, disc in enumerate(self.scales):
            if i:
                image = F.avg_pool2d(image, 3, 2, 1, count_include_pad=False)
            outputs.append(disc(image))
        return outputs
