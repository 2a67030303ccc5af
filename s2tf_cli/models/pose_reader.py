"""A head-pose reader beside E_ir^v: the crop's yaw, pitch and roll in f_ir's pose-entry units.

E_ir^v learns pose inside the GAN stage, as one of several things it encodes, and pools its last
feature map to a single vector: where the nose sits against the eyes is largely averaged away. On
unseen people's photos it reads yaw at corr 0.90 with the pose judge, on video frames at 0.31 on the
median clip. A reader of its own, trained on the face set's pose labels with framing and light
augmented (training/pose_reader_stage.py), keeps the layout (its last map is flattened, not pooled).
Where the weights carry one, it replaces E_ir^v's pose entries wherever a reference face or a pose
video is read; G, which learnt to draw those entries, is unchanged.
"""

from __future__ import annotations

import torch
from torch import nn


class PoseReader(nn.Module):
    """(B, 3, S, S) face crop in [-1, 1] -> (B, 3) yaw, pitch, roll as (measure - center) / scale.

    Per width in `channels`: a 3x3 convolution, then a strided one halving the map (GroupNorm of
    8 groups, so each width is a multiple of 8); the last map, S / 2**len(channels) square, is flattened."""

    def __init__(self, channels: list[int], image_size: int, entries: int = 3):
        super().__init__()
        side = image_size // 2 ** len(channels)
        if side < 1 or side * 2 ** len(channels) != image_size:
            raise ValueError(f"pose_reader: {len(channels)} halvings do not fit image_size {image_size}")
        bad = [c for c in channels if c % 8]
        if bad:
            raise ValueError(f"pose_reader: widths must be multiples of 8, not {bad}")
        layers: list[nn.Module] = []
        cin = 3
        for cout in channels:
            layers += [nn.Conv2d(cin, cout, 3, 1, 1), nn.GroupNorm(8, cout), nn.SiLU(),
                       nn.Conv2d(cout, cout, 3, 2, 1), nn.GroupNorm(8, cout), nn.SiLU()]  # fmt: skip
            cin = cout
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(cin * side * side, entries)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        assert image.dim() == 4 and image.shape[1] == 3, f"expected (B, 3, H, W), got {tuple(image.shape)}"
        return self.head(self.body(image).flatten(1))
