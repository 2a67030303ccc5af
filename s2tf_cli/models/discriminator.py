"""D, used for L_adv in training only: multi-scale patch discriminator (pix2pixHD, Wang et al. 2018) for
the paper's stages, residual whole-image discriminator (StyleGAN2) for the GAN stage on photos."""

from __future__ import annotations

import math

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


class EqualConv2d(nn.Module):
    """Conv with StyleGAN's equalised learning rate (weights scaled at run time), so one Adam lr suits
    every layer of D as it does G's."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.scale = 1 / math.sqrt(cin * kernel * kernel)
        self.stride = stride
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, self.stride, self.padding)


class ResidualBlock(nn.Module):
    """conv, conv + 2x downsample, with a 1x1 downsampled skip (StyleGAN2's resnet D block)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = EqualConv2d(cin, cin, 3)
        self.conv2 = EqualConv2d(cin, cout, 3)
        self.skip = EqualConv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.conv1(x), 0.2) * math.sqrt(2)
        y = F.leaky_relu(self.conv2(F.avg_pool2d(y, 2)), 0.2) * math.sqrt(2)
        return (y + self.skip(F.avg_pool2d(x, 2))) / math.sqrt(2)


class ResidualDiscriminator(nn.Module):
    """(B, 3, H, W) -> (B,) realness logits for whole images, with minibatch standard deviation.

    Returns the same nested-list shape as MultiScaleDiscriminator ([[logits]]) so the adversarial
    losses serve both."""

    def __init__(self, cfg: DiscriminatorConfig, image_size: int):
        super().__init__()
        ch = cfg.channels
        side = image_size // 2 ** len(ch)
        if side < 1 or image_size % 2 ** len(ch):
            raise ValueError(f"image_size {image_size} is not divisible by 2**{len(ch)} for a residual D")
        self.from_rgb = EqualConv2d(3, ch[0], 1)
        self.blocks = nn.ModuleList(ResidualBlock(a, b) for a, b in zip(ch[:-1], ch[1:]))
        self.last = ResidualBlock(ch[-1], ch[-1])
        self.conv = EqualConv2d(ch[-1] + 1, ch[-1], 3)
        self.fc = nn.Linear(ch[-1] * side * side, ch[-1])
        self.out = nn.Linear(ch[-1], 1)

    def forward(self, image: torch.Tensor) -> list[list[torch.Tensor]]:
        x = F.leaky_relu(self.from_rgb(image), 0.2) * math.sqrt(2)
        for block in self.blocks:
            x = block(x)
        x = self.last(x)
        group = min(4, len(x))
        if len(x) % group:
            group = 1
        std = x.view(group, -1, *x.shape[1:]).float().var(0, unbiased=False).add(1e-8).sqrt()
        std = std.mean(dim=(1, 2, 3)).to(x.dtype).repeat(group)[:, None, None, None].expand(-1, 1, *x.shape[2:])
        x = F.leaky_relu(self.conv(torch.cat([x, std], 1)), 0.2) * math.sqrt(2)
        x = F.leaky_relu(self.fc(x.flatten(1)), 0.2) * math.sqrt(2)
        return [[self.out(x)]]


def make_discriminator(cfg: DiscriminatorConfig, image_size: int) -> nn.Module:
    if cfg.kind == "residual":
        return ResidualDiscriminator(cfg, image_size)
    return MultiScaleDiscriminator(cfg)
