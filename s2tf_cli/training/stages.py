"""The three training stages of §3.3 as one nn.Module, so DDP sees every forward.

- visual: E_id^v(I_1), E_ir^v(I_k+) and G reconstruct I_k; ArcFace on W; L_rec + L_adv.
- sync: visual encoders and W frozen; E_id^a with ArcFace on the shared W and InfoNCE against
  f_id^v (Eq. 1); E_s^a with InfoNCE against Δf_ir^v = f_ir^{v_k} - f_ir^{v_1} (Eq. 3), negatives
  from other people first, then (curriculum) also off-sync windows of the same clip.
- finetune: G(cat(f_id^v, f_s^a + f_ir^{v1})) first, then also G(cat(f_id^a, f_s^a + f_ir^{v1})),
  with every loss of Eq. 7.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.discriminator import MultiScaleDiscriminator
from ..models.s2tf import S2TFModel, turn
from .config import TrainConfig
from .losses import (
    SPEECH_REGION,
    CentroidLoss,
    InfoNCE,
    ReconstructionLoss,
    VGG19Features,
    adversarial_d,
    adversarial_g,
)

STAGES = ("visual", "sync", "finetune")


def stage_at(cfg: TrainConfig, step: int) -> tuple[str, str]:
    """(stage, phase) for a global step. Phases: sync "other-ids" / "same-id" (curriculum on
    negatives); finetune "visual-id" then "audio-id"."""
    s = cfg.steps
    if step < s.visual:
        return "visual", ""
    step -= s.visual
    if step < s.sync:
        return "sync", "other-ids" if step < s.sync * s.sync_curriculum else "same-id"
    step -= s.sync
    return "finetune", "visual-id" if step < int(s.finetune * (1 - s.finetune_audio_share)) else "audio-id"


def novel_identities(f_id: torch.Tensor, max_angle: float) -> torch.Tensor:
    """Each row of f_id turned by an angle uniform in [0, max_angle] towards a random direction
    orthogonal to it: unit identities near, but off, the ones the batch has targets for."""
    u = F.normalize(f_id, dim=-1)
    return turn(u, torch.randn_like(u), torch.rand(len(u), 1, device=u.device, dtype=u.dtype) * max_angle)


def trainable(model: S2TFModel, stage: str) -> list[nn.Module]:
    if stage == "visual":
        return [model.visual_identity, model.visual_irrelevant, model.generator, model.centroids]
    if stage == "sync":
        return [model.audio_identity, model.audio_content]
    return [model.visual_identity, model.visual_irrelevant, model.generator, model.centroids, model.audio_identity,
            model.audio_content]  # fmt: skip


class TrainingModule(nn.Module):
    def __init__(self, cfg: TrainConfig, vgg: VGG19Features | None = None):
        super().__init__()
        self.cfg = cfg
        self.model = S2TFModel(cfg.model)
        self.discriminator = MultiScaleDiscriminator(cfg.model.discriminator)
        self.centroid_loss = CentroidLoss()
        self.nce = InfoNCE(cfg.sync_temperature)
        self.rec = ReconstructionLoss(cfg.loss.per, vgg, cfg.loss.mouth)
        a = cfg.model.audio
        self.context = -(-(a.n_fft // 2) // a.hop_length)  # context mel frames each side of a content window
        self.adversarial = True

    def set_stage(self, stage: str) -> None:
        self.requires_grad_(False)
        for module in trainable(self.model, stage):
            module.requires_grad_(True)
        if stage != "sync":
            self.discriminator.requires_grad_(True)
        frozen = [getattr(self.model, part) for part in self.cfg.frozen] + self.model.audio_identity.pretrained_parts()
        for module in frozen:
            module.requires_grad_(False)
        self.model.train()
        # Frozen encoders keep their batch-norm statistics.
        if stage == "sync":
            frozen += [self.model.visual_identity, self.model.visual_irrelevant]
        for m in frozen:
            m.eval()

    # -------------------------------------------------------------------------- features
    def content_features(self, audio: torch.Tensor) -> torch.Tensor:
        """(N, samples) audio segments -> (N, ir_dim) f_s^a over the centred content window."""
        mel = self.model.mel(audio)  # (N, n_mels, frames)
        w = self.cfg.model.audio.content_window
        return self.model.content(mel[:, :, self.context : self.context + w])

    def identity_features(self, audio: torch.Tensor) -> torch.Tensor:
        return self.model.audio_identity(self.model.mel(audio))

    def _drop_ir(self, f_ir: torch.Tensor) -> torch.Tensor:
        keep = (torch.rand(len(f_ir), 1, device=f_ir.device) >= self.cfg.ir_dropout).to(f_ir.dtype)
        return f_ir * keep

    # ------------------------------------------------------------------------------ steps
    def forward(self, batch: dict, stage: str, phase: str, part: str = "g", fake: torch.Tensor | None = None,
                adversarial: bool = True):  # fmt: skip
        self.adversarial = adversarial
        if part == "d":
            return self._discriminator_step(batch, fake)
        if stage == "visual":
            return self._visual(batch)
        if stage == "sync":
            return self._sync(batch, phase)
        return self._finetune(batch, phase)

    def _gan_terms(self, fake: torch.Tensor, real: torch.Tensor, metrics: dict, tag: str) -> torch.Tensor:
        w = self.cfg.loss
        d_fake = self.discriminator(fake)
        d_real = self.discriminator(real) if self.rec.vgg is None else None
        rec, m = self.rec(fake, real, d_fake, d_real)
        adv = adversarial_g(d_fake) if self.adversarial else d_fake[0][-1].sum() * 0
        metrics.update({f"{tag}_l1": m["l1"], f"{tag}_per": m["per"], f"{tag}_adv": adv.detach()})
        return w.rec * rec + w.adv * adv

    def _labelled(self, f_id: torch.Tensor, labels: torch.Tensor, metrics: dict, tag: str) -> torch.Tensor:
        ok = labels >= 0
        if not ok.any():
            return f_id.sum() * 0
        loss, m = self.centroid_loss(self.model.centroids, f_id[ok], labels[ok])
        metrics[f"{tag}_arcface"] = loss.detach()
        metrics[f"{tag}_acc"] = m["acc"]
        return loss

    def _visual(self, batch: dict):
        w, metrics = self.cfg.loss, {}
        f_id = self.model.visual_identity(batch["first"])
        f_ir = self._drop_ir(self.model.visual_irrelevant(batch["frame_aug"]))
        fake = self.model.generate(f_id, f_ir)
        loss = self._gan_terms(fake, batch["frame"], metrics, "v")
        loss = loss + w.centroid * self._labelled(f_id, batch["label"], metrics, "vid")
        metrics["loss_g"] = loss.detach()
        return loss, metrics, fake

    def _sync_losses(self, batch: dict, phase: str, f_id_v: torch.Tensor, f_ir_k: torch.Tensor,
                     f_ir_1: torch.Tensor, metrics: dict):  # fmt: skip
        w = self.cfg.loss
        f_id_a = self.identity_features(batch["id_audio"])
        loss = w.audio_arcface * self._labelled(f_id_a, batch["label"], metrics, "aid")
        l_id, m = self.nce(f_id_a, f_id_v)
        metrics.update({"id_sync": l_id.detach(), "id_sync_acc": m["acc"]})
        f_s = self.content_features(batch["content_audio"])
        extra = None
        if phase in ("same-id", "visual-id", "audio-id") and "neg_audio" in batch:
            b = len(f_s)
            extra = self.content_features(batch["neg_audio"]).view(b, -1, f_s.shape[-1])
        delta = f_ir_k - f_ir_1  # Δf_ir^v: what changed since the clip's first frame
        l_s, m = self.nce(delta, f_s, extra)
        metrics.update({"s_sync": l_s.detach(), "s_sync_acc": m["acc"], "s_pos_cos": m["pos_cos"]})
        return loss + w.id_sync * l_id + w.s_sync * l_s, f_id_a, f_s

    def _sync(self, batch: dict, phase: str):
        metrics = {}
        with torch.no_grad():
            f_id_v = self.model.visual_identity(batch["frame"])
            f_ir_k = self.model.visual_irrelevant(batch["frame"])
            f_ir_1 = self.model.visual_irrelevant(batch["clip_first"])
        loss, _, _ = self._sync_losses(batch, phase, f_id_v, f_ir_k, f_ir_1, metrics)
        metrics["loss_g"] = loss.detach()
        return loss, metrics, None

    def _finetune(self, batch: dict, phase: str):
        w, metrics = self.cfg.loss, {}
        f_id_v = self.model.visual_identity(batch["first"])
        f_ir_k = self.model.visual_irrelevant(batch["frame"])
        f_ir_1 = self.model.visual_irrelevant(batch["clip_first"])
        loss, f_id_a, f_s = self._sync_losses(batch, phase, f_id_v.detach(), f_ir_k, f_ir_1, metrics)
        loss = loss + w.centroid * self._labelled(f_id_v, batch["label"], metrics, "vid")
        # Dropping only f_ir^{v1} teaches G the paper's frontal path G(cat(f_id, f_s^a)) used by `s2tf face`.
        base = self._drop_ir(f_ir_1)
        n_pose = len(self.cfg.model.pose_scale)
        if self.cfg.target_pose and n_pose:
            base = torch.cat([f_ir_k[:, :n_pose].detach(), base[:, n_pose:]], dim=-1)
        f_ir = self.model.speak(base, f_s)
        m = self.model.mouth_entry
        if w.speech_mouth and m is not None:  # the voice says how open frame k's mouth is, as E_ir^v reads it
            err = F.smooth_l1_loss(f_s[:, m].float(), f_ir_k[:, m].detach().float())
            metrics["speech_mouth"] = err.detach()
            loss = loss + w.speech_mouth * err
        # the silent twin of `_still` must differ from `fake` by f_s^a alone, not by G's noise
        noise = self.model.generator.make_noise(int(torch.randint(2**31, ())), f_ir.device) if w.still > 0 else None
        fake = self.model.generate(f_id_v, f_ir, noise)
        loss = loss + self._gan_terms(fake, batch["frame"], metrics, "va")
        if w.still > 0:
            loss = loss + w.still * self._still(fake, f_id_v, base, batch["content_audio"], noise, metrics)
        if phase == "audio-id":
            fake_a = self.model.generate(f_id_a, f_ir)
            loss = loss + self._gan_terms(fake_a, batch["frame"], metrics, "a")
            fake = torch.cat([fake, fake_a])
        if w.novel_id > 0:  # no target image: only D judges these
            fake_n = self.model.generate(novel_identities(f_id_a.detach(), self.cfg.novel_angle), f_ir.detach())
            d_fake = self.discriminator(fake_n)
            adv = adversarial_g(d_fake) if self.adversarial else d_fake[0][-1].sum() * 0
            metrics["novel_adv"] = adv.detach()
            loss = loss + w.novel_id * adv
            fake = torch.cat([fake, fake_n])
        metrics["loss_g"] = loss.detach()
        return loss, metrics, fake

    def _still(self, fake: torch.Tensor, f_id: torch.Tensor, base: torch.Tensor, audio: torch.Tensor,
               noise: list[torch.Tensor], metrics: dict) -> torch.Tensor:  # fmt: skip
        """L1 outside the speech region between `fake` and the same face (f_ir `base`) drawn saying silence."""
        with torch.no_grad():
            f_sil = self.content_features(torch.zeros_like(audio[:1])).expand(len(base), -1)
            quiet = self.model.generate(f_id, self.model.speak(base, f_sil), noise)
        s = fake.shape[-1]
        r0, r1, c0, c1 = (int(round(f * s)) for f in SPEECH_REGION)
        outside = torch.ones(1, 1, s, s, device=fake.device, dtype=fake.dtype)
        outside[..., r0:r1, c0:c1] = 0
        still = ((fake - quiet).abs() * outside).sum() / (outside.sum() * fake.shape[0] * fake.shape[1])
        metrics["still"] = still.detach()
        return still

    def _discriminator_step(self, batch: dict, fake: torch.Tensor):
        real = batch["frame"]
        d_real = self.discriminator(real)
        d_fake = self.discriminator(fake.detach())
        loss = self.cfg.loss.adv * adversarial_d(d_real, d_fake)
        return loss, {"loss_d": loss.detach()}, None
