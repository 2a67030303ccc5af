"""The S2TF model: both modalities' encoders, the shared centroids and the generator, in one module.

This is what a weights folder holds. The discriminator is a training-time companion and lives in
training checkpoints only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from .audio_content import AudioContentEncoder
from .audio_identity import AudioIdentityEncoder
from .centroids import IdentityCentroids
from .generator import StyleGenerator
from .mel import LogMel
from .pose_reader import PoseReader
from .speaker_ge2e import GE2EIdentityEncoder
from .visual_identity import VisualIdentityEncoder
from .visual_irrelevant import VisualIrrelevantEncoder


def turn(f_id: torch.Tensor, noise: torch.Tensor, angle: torch.Tensor | float) -> torch.Tensor:
    """Unit f_id (..., id_dim) turned by `angle` radians (< pi/2) towards noise's component tangent to it:
    a nearby point of the angular identity space (sampling around a voice, training off its direction)."""
    step = noise - (noise * f_id).sum(-1, keepdim=True) * f_id
    tan = torch.tan(angle) if isinstance(angle, torch.Tensor) else math.tan(angle)
    return F.normalize(f_id + F.normalize(step, dim=-1) * tan, dim=-1)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Unit-sphere interpolation between rows of a and b (t: (B, 1) in [0, 1]): the points between two
    identities that the GAN stage draws faces for."""
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    omega = torch.acos((a * b).sum(-1, keepdim=True).clamp(-0.9999, 0.9999))
    so = torch.sin(omega)
    return F.normalize((torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / so, dim=-1)


class S2TFModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        a = cfg.audio
        self.mel = LogMel(a)
        if cfg.audio_identity.backbone == "ge2e":
            self.audio_identity = GE2EIdentityEncoder(cfg.audio_identity, a, cfg.id_dim)  # E_id^a
        else:
            self.audio_identity = AudioIdentityEncoder(cfg.audio_identity, a.n_mels, cfg.id_dim)  # E_id^a
        self.audio_content = AudioContentEncoder(cfg.audio_content, a.n_mels, a.content_window, cfg.ir_dim)  # E_s^a
        self.visual_identity = VisualIdentityEncoder(cfg.visual_identity, cfg.id_dim)  # E_id^v
        self.visual_irrelevant = VisualIrrelevantEncoder(cfg.visual_irrelevant, cfg.ir_dim)  # E_ir^v
        self.centroids = IdentityCentroids(cfg.num_identities, cfg.id_dim, cfg.arcface_scale, cfg.arcface_margin)
        self.generator = StyleGenerator(cfg.generator, cfg.id_dim + cfg.ir_dim, cfg.image_size)  # G
        if cfg.pose_reader and not cfg.pose_scale:
            raise ValueError("pose_reader needs pose entries in f_ir (pose_scale)")
        self.pose_reader = PoseReader(cfg.pose_reader, cfg.image_size, len(cfg.pose_scale)) if cfg.pose_reader else None

    @property
    def mouth_entry(self) -> int | None:
        """The f_ir entry that says how open the mouth is (after the pose entries), where G was taught one."""
        return len(self.cfg.pose_scale) if self.cfg.mouth_scale else None

    def irrelevant(self, image: torch.Tensor) -> torch.Tensor:
        """f_ir^v of face crops as inference reads a reference or a pose video: E_ir^v's, its pose entries
        from the pose reader where the weights carry one."""
        f_ir = self.visual_irrelevant(image)
        if self.pose_reader is None:
            return f_ir
        n = len(self.cfg.pose_scale)
        return torch.cat([self.pose_reader(image).to(f_ir.dtype), f_ir[:, n:]], dim=-1)

    def content(self, windows: torch.Tensor) -> torch.Tensor:
        """f_s^a of (N, n_mels, content_window) mel windows. Where f_ir carries pose entries
        (`pose_scale`), f_s^a leaves them at zero: speech moves the mouth; the reference, the pose
        video or motion.py turn the head. Where it has a mouth entry, f_s^a is that entry alone."""
        f_s = self.audio_content(windows)
        m, n = self.mouth_entry, len(self.cfg.pose_scale)
        if m is not None:
            keep = torch.zeros(f_s.shape[-1], dtype=f_s.dtype, device=f_s.device)
            keep[m] = 1
            return f_s * keep
        if n:
            f_s = torch.cat([torch.zeros_like(f_s[:, :n]), f_s[:, n:]], dim=-1)
        return f_s

    def speak(self, f_ir: torch.Tensor, f_s: torch.Tensor) -> torch.Tensor:
        """f_ir of a face saying f_s^a: the paper's f_ir + f_s^a, or, where G has a mouth entry, f_ir with
        that entry set by the voice (the reference's own mouth does not add to it)."""
        m = self.mouth_entry
        if m is None:
            return f_ir + f_s
        f_ir = f_ir.expand_as(f_s)
        return torch.cat([f_ir[..., :m], f_s[..., m : m + 1], f_ir[..., m + 1 :]], dim=-1)

    def generate(self, f_id: torch.Tensor, f_ir: torch.Tensor, noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        """G(cat(f_id, f_ir)). f_id is L2-normalised (scaled to sqrt(id_dim)) first: the identity
        space is angular (ArcFace, cosine contrastive loss), so only its direction may reach G, which
        is what lets an audio f_id stand in for a visual one."""
        return self.generator(self.generator_input(f_id, f_ir), noise)

    def generator_input(self, f_id: torch.Tensor, f_ir: torch.Tensor) -> torch.Tensor:
        """What G is given for (f_id, f_ir), for `generate` and for another G that stands in for this one."""
        return torch.cat([F.normalize(f_id, dim=-1) * self.cfg.id_dim**0.5, f_ir], dim=-1)
