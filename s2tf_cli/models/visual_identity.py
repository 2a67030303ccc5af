"""E_id^v: the visual identity encoder, ResNeXt50 in the paper preset, a small ResNet on CPU."""

from __future__ import annotations

import torch
from torch import nn

from ..config import VisualIdentityConfig


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, cfg: VisualIdentityConfig):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut = _shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    """ResNeXt bottleneck: 1x1 reduce, grouped 3x3, 1x1 expand."""

    def __init__(self, cin: int, cout: int, stride: int, cfg: VisualIdentityConfig, width: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, width, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(True),
            nn.Conv2d(width, width, 3, stride, 1, groups=cfg.groups, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(True),
            nn.Conv2d(width, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut = _shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class VisualIdentityEncoder(nn.Module):
    """(B, 3, H, W) image in [-1, 1] -> (B, id_dim) f_id^v (unnormalised)."""

    def __init__(self, cfg: VisualIdentityConfig, id_dim: int):
        super().__init__()
        if cfg.block not in ("basic", "bottleneck"):
            raise ValueError(f"visual_identity.block must be 'basic' or 'bottleneck', not {cfg.block!r}")
        self.stem = nn.Sequential(
            nn.Conv2d(3, cfg.stem, 7, 2, 3, bias=False), nn.BatchNorm2d(cfg.stem), nn.ReLU(True), nn.MaxPool2d(3, 2, 1)
        )
        blocks, cin = [], cfg.stem
        for i, (cout, n) in enumerate(zip(cfg.channels, cfg.layers)):
            width = cfg.groups * cfg.width_per_group * 2**i
            for j in range(n):
                stride = 2 if (j == 0 and i > 0) else 1
                if cfg.block == "basic":
                    blocks.append(BasicBlock(cin, cout, stride, cfg))
                else:
                    blocks.append(Bottleneck(cin, cout, stride, cfg, width))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, id_dim)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        assert image.dim() == 4 and image.shape[1] == 3, f"expected (B, 3, H, W), got {tuple(image.shape)}"
        x = self.blocks(self.stem(image))
        return self.fc(x.mean(dim=(2, 3)))
