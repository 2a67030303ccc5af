"""The paper's losses, each an nn.Module returning (loss, metrics)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.centroids import IdentityCentroids


class CentroidLoss(nn.Module):
    """Eq. 2, ArcFace on the shared centroids W; the same W serves f_id^v and f_id^a."""

    def forward(self, centroids: IdentityCentroids, f_id: torch.Tensor, labels: torch.Tensor):
        logits = centroids.arcface_logits(f_id, labels)
        loss = F.cross_entropy(logits, labels)
        acc = (centroids.cosine(f_id).argmax(-1) == labels).float().mean()
        return loss, {"acc": acc.detach()}


class InfoNCE(nn.Module):
    """Eq. 1 / Eq. 3: -log softmax over cosine similarities of the positive pair against negatives.

    `anchor` (B, D) pairs with `positive` (B, D) row by row; every other row of `positive` is a
    negative (in-batch), plus optional extra negatives (B, M, D) per row. τ scales the cosines
    (the paper's equations use τ = 1).
    """

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        self.temperature = temperature

    def forward(self, anchor: torch.Tensor, positive: torch.Tensor, extra: torch.Tensor | None = None):
        a = F.normalize(anchor, dim=-1)
        p = F.normalize(positive, dim=-1)
        logits = a @ p.t()  # (B, B): diagonal = positives
        if extra is not None:
            logits = torch.cat([logits, torch.einsum("bd,bmd->bm", a, F.normalize(extra, dim=-1))], dim=1)
        labels = torch.arange(len(a), device=a.device)
        loss = F.cross_entropy(logits / self.temperature, labels)
        acc = (logits.argmax(-1) == labels).float().mean()
        return loss, {"acc": acc.detach(), "pos_cos": logits.diagonal().mean().detach()}


class VGG19Features(nn.Module):
    """VGG19 conv features (torchvision layout: features.N.weight) up to relu5_1, for L_per."""

    LAYERS = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512]
    TAPS = (1, 6, 11, 20, 29)  # relu1_1, relu2_1, relu3_1, relu4_1, relu5_1

    def __init__(self):
        super().__init__()
        layers, cin = [], 3
        for v in self.LAYERS:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU()]
                cin = v
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_file(cls, path: str) -> VGG19Features:
        from safetensors.torch import load_file

        model = cls()
        state = {k.removeprefix("features."): v for k, v in load_file(path).items() if k.startswith("features.")}
        model.features.load_state_dict(state, strict=True)
        return model.eval().requires_grad_(False)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = ((image + 1) / 2 - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.TAPS:
                out.append(x)
        return out


# Rows and columns (fractions of an aligned crop's size) that speech may move: mouth, jaw and chin.
SPEECH_REGION = (0.55, 1.0, 0.2, 0.8)


class ReconstructionLoss(nn.Module):
    """Eq. 5: L1 + λper · L_per. L_per (Eq. 4) over VGG19 layers when weights are available, else
    over the multi-scale discriminator's features (pix2pixHD's feature matching)."""

    # The mouth in an aligned face crop (rows, columns as fractions of the size): the box eval measures.
    MOUTH = (0.62, 0.85, 0.30, 0.70)

    def __init__(self, per_weight: float, vgg: VGG19Features | None, mouth_weight: float = 0.0):
        super().__init__()
        self.per_weight = per_weight
        self.vgg = vgg
        self.mouth_weight = mouth_weight

    def forward(self, fake: torch.Tensor, real: torch.Tensor, d_fake=None, d_real=None):
        l1 = (fake - real).abs().mean()
        if self.mouth_weight:
            # ~4 % of the pixels: without extra weight the encoders learn to ignore it (f_ir then carries
            # almost nothing of the mouth, and the content sync of Eq. 3 has no target)
            s = fake.shape[-1]
            r0, r1, c0, c1 = (int(f * s) for f in self.MOUTH)
            mouth = (fake[..., r0:r1, c0:c1] - real[..., r0:r1, c0:c1]).abs().mean()
            l1 = l1 + self.mouth_weight * mouth
        if self.vgg is not None:
            per = sum((a - b).abs().mean() for a, b in zip(self.vgg(fake), self.vgg(real))) / len(VGG19Features.TAPS)
        elif d_fake is not None:
            terms = [(f - r.detach()).abs().mean() for fs, rs in zip(d_fake, d_real) for f, r in zip(fs[:-1], rs[:-1])]
            per = sum(terms) / max(len(terms), 1)
        else:
            per = torch.zeros((), device=fake.device)
        return l1 + self.per_weight * per, {"l1": l1.detach(), "per": per.detach()}


def adversarial_g(d_fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """Eq. 6, generator side (non-saturating), summed over the discriminator's scales."""
    return sum(F.softplus(-out[-1]).mean() for out in d_fake)


def adversarial_d(d_real: list[list[torch.Tensor]], d_fake: list[list[torch.Tensor]]) -> torch.Tensor:
    return sum(F.softplus(-r[-1]).mean() + F.softplus(f[-1]).mean() for r, f in zip(d_real, d_fake))
