"""W: the identity class centroids shared by the audio and the visual identity encoders (paper Eq. 2)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class IdentityCentroids(nn.Module):
    """One row per training identity; ArcFace logits for f_id from either modality.

    Sharing the rows between modalities pulls a voice and a face of the same person towards the
    same centroid, which is what makes the identity space cross-modal.
    """

    def __init__(self, num_identities: int, id_dim: int, scale: float, margin: float):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_identities, id_dim) / math.sqrt(id_dim))
        self.scale = scale
        self.margin = margin

    def cosine(self, f_id: torch.Tensor) -> torch.Tensor:
        """(B, id_dim) -> (B, num_identities) cosine to every centroid."""
        return F.linear(F.normalize(f_id, dim=-1), F.normalize(self.weight, dim=-1))

    def blend(self, f_id: torch.Tensor, temperature: float) -> torch.Tensor:
        """(id_dim,) -> the unit softmax(cos / temperature)-weighted mean of the unit centroids."""
        weights = torch.softmax(self.cosine(f_id.float()[None])[0] / temperature, dim=0)
        return F.normalize(weights @ F.normalize(self.weight.float(), dim=-1), dim=-1).to(f_id.dtype)

    def arcface_logits(self, f_id: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """s * cos(theta + m) for the true class, s * cos(theta) for the others."""
        cos = self.cosine(f_id).clamp(-1 + 1e-7, 1 - 1e-7)
        theta = torch.acos(cos)
        target = torch.cos(theta + self.margin)
        # Keep the logit monotonic when theta + m passes pi (the usual "easy margin" guard).
        target = torch.where(theta + self.margin < math.pi, target, cos - self.margin * math.sin(self.margin))
        one_hot = F.one_hot(labels, cos.shape[-1]).bool()
        return self.scale * torch.where(one_hot, target, cos)
