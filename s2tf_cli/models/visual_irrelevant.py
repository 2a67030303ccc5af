"""E_ir^v: the visual identity-irrelevant encoder (head pose, expression, mouth shape)."""

from __future__ import annotations

import torch
from torch import nn

from ..config import VisualIrrelevantConfig


class VisualIrrelevantEncoder(nn.Module):
    """(B, 3, H, W) augmented image in [-1, 1] -> (B, ir_dim) f_ir^v.

    Trained on augmented frames I+ (texture and shape changed, pose and mouth kept), so what it
    encodes is what survives that augmentation: pose and expression, not identity.
    """

    def __init__(self, cfg: VisualIrrelevantConfig, ir_dim: int):
        super().__init__()
        layers, cin = [], 3
        for cout in cfg.channels:
            layers += [nn.Conv2d(cin, cout, 4, 2, 1), nn.InstanceNorm2d(cout, affine=True), nn.LeakyReLU(0.2, True)]
            cin = cout
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, ir_dim)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        assert image.dim() == 4 and image.shape[1] == 3, f"expected (B, 3, H, W), got {tuple(image.shape)}"
        return self.fc(self.convs(image).mean(dim=(2, 3)))
