"""E_id^a: the audio identity encoder, ResNetSE34-style with attentive statistics pooling.

After voxceleb_trainer's ResNetSE34: residual blocks with squeeze-excitation over a (mel x time)
image, then attention-weighted mean and standard deviation over time, then a linear map into the
identity space shared with the visual identity encoder.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import AudioIdentityConfig


class SEBasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, reduction: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        hidden = max(cout // reduction, 1)
        self.se = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(cout, hidden, 1), nn.ReLU(True), nn.Conv2d(hidden, cout, 1), nn.Sigmoid()
        )
        self.shortcut = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        y = y * self.se(y)
        return torch.relu(y + self.shortcut(x))


class AttentiveStatsPool(nn.Module):
    """Attention over time frames; returns cat(weighted mean, weighted std)."""

    def __init__(self, dim: int, hidden: int = 128):
        super().__init__()
        self.attention = nn.Sequential(nn.Conv1d(dim, hidden, 1), nn.Tanh(), nn.Conv1d(hidden, dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, T)
        weights = torch.softmax(self.attention(x), dim=-1)
        mean = (x * weights).sum(-1)
        var = (x.pow(2) * weights).sum(-1) - mean.pow(2)
        return torch.cat([mean, var.clamp_min(1e-6).sqrt()], dim=1)


class AudioIdentityEncoder(nn.Module):
    """(B, n_mels, T) log-mel -> (B, id_dim) f_id^a (unnormalised)."""

    def __init__(self, cfg: AudioIdentityConfig, n_mels: int, id_dim: int):
        super().__init__()
        self.input_norm = nn.InstanceNorm1d(n_mels)  # removes channel/loudness offsets per clip
        ch = cfg.channels
        self.stem = nn.Sequential(nn.Conv2d(1, ch[0], 3, 1, 1, bias=False), nn.BatchNorm2d(ch[0]), nn.ReLU(True))
        stages, cin = [], ch[0]
        for i, (cout, n) in enumerate(zip(ch, cfg.layers)):
            for j in range(n):
                stride = 2 if (j == 0 and i > 0) else 1
                stages.append(SEBasicBlock(cin, cout, stride, cfg.se_reduction))
                cin = cout
        self.stages = nn.Sequential(*stages)
        freq = n_mels
        for _ in range(len(ch) - 1):
            freq = (freq + 1) // 2
        self.pool = AttentiveStatsPool(cin * freq)
        self.fc = nn.Linear(2 * cin * freq, id_dim)

    def pretrained_parts(self) -> list[nn.Module]:
        """Modules that keep their pretrained weights in every training stage: none here."""
        return []

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        assert mel.dim() == 3, f"expected (B, n_mels, T), got {tuple(mel.shape)}"
        x = self.input_norm(mel)[:, None]  # (B, 1, F, T)
        x = self.stages(self.stem(x))  # (B, C, F', T')
        x = x.flatten(1, 2)  # (B, C*F', T')
        return self.fc(self.pool(x))
