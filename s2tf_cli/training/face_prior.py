"""The identity run (`steps.identity`) and the GAN stage (`steps.faces`) on face photos: E_id^v, E_ir^v, W and
G learn from every photo at hand.

Why a stage of its own: trained as an autoencoder on a thousand synthesized people, G drew a mean face
for every code between them, and every unheard voice lands between them. Here D is the main teacher,
on real photos of ~10k people, and G is asked for faces at novel identities too:

- E_id^v learns only from real photos: ArcFace on the shared W (people with a label) and gender, age and
  ethnicity heads where the photo has labels; an identity run trains it alone, and the GAN stage then keeps
  it (and W) frozen (`frozen`), so G learns one fixed space. Its f_id always reaches G detached.
- G(f_id(A), f_ir(B)) draws B (A: another photo of B's person): D, an L1 at low resolution (pose, layout,
  colour, not pixels), and E_id^v's cosine to f_id(A).
- G(f_id*, f_ir(C)) with f_id* a slerp between two people and C a third photo: no target, only D and
  E_id^v's cosine to f_id* judge it. This is what makes the space between people draw faces.
- D is a residual whole-image discriminator on DiffAugment'ed inputs with lazy R1.
- Pose (`faces.pose`, where the face set has pose labels): f_ir^v's first three entries are taught the
  target's yaw, pitch and roll (FaceMesh's reading, standardised: data/pose_labels.py); G draws each
  labelled target from its label in those entries, the novel-identity faces from another photo's pose, and
  every drawn face is asked to show the pose it was given, read back by E_ir^v (`faces.pose_cycle`), so
  `--pose` turns the head and head motion can be written into f_ir directly.
- An anchor (`faces.anchor`, for a run that continues a shipped G): every drawn face is held at low
  resolution to what a frozen teacher G draws from the same codes, so a G sharpened by D keeps the
  teacher's layout and head turn; the mouth anchor (`faces.anchor_mouth`) holds its mouths, at full
  resolution, across the mouth entry's range the voice sets at `talk`.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..models.discriminator import make_discriminator
from ..models.s2tf import S2TFModel, slerp
from . import checkpoint
from .config import TrainConfig
from .diffaugment import diff_augment
from .face_batches import ETHNICITIES, FaceSet
from .losses import CentroidLoss, ReconstructionLoss, adversarial_d, adversarial_g

log = logging.getLogger(__name__)

AGE_SCALE = 50.0  # years per unit of the age head's output
# Every row of metrics-faces.csv has these columns (NaN where a step did not compute one: R1 is lazy,
# the identity term starts late, a batch may hold no labelled photo).
METRICS = ("loss_g", "adv_g", "rec_low", "rec_mouth", "id_cos", "arcface", "arcface_acc", "gender_acc", "age_mae",
           "loss_d", "d_real", "d_fake", "r1", "pose_err", "pose_cycle", "mouth_err", "anchor",
           "anchor_mouth")  # fmt: skip
POSE_DIMS = 3  # yaw, pitch, roll: f_ir^v[:, :3] when a run teaches pose
IDENTITY_METRICS = ("loss_g", "arcface", "arcface_acc", "gender_acc", "age_mae")


class FacePriorModule(nn.Module):
    """The model, its D and the attribute heads, as one module (one state dict in checkpoints)."""

    def __init__(self, cfg: TrainConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.faces.pose_cycle_reader and not cfg.model.pose_reader:
            raise ValueError("faces.pose_cycle_reader needs a model with a pose reader (model.pose_reader)")
        if (cfg.faces.anchor or cfg.faces.anchor_mouth) and not cfg.anchor_init:
            raise ValueError("faces.anchor needs anchor_init: the weights whose generator the faces are anchored to")
        if cfg.faces.anchor_mouth and not cfg.faces.mouth:
            raise ValueError("faces.anchor_mouth needs faces.mouth: it sets the mouth entry after the pose entries")
        self.model = S2TFModel(cfg.model)
        self._anchor: list[nn.Module] = []  # the frozen teacher G (`anchor_to`), in a list: not in state dicts
        # E_s^a does not train here: until a content stage does, it says "no mouth motion" (f_s^a = 0), so a
        # face drawn from this stage's export is G(f_id, f_ir^pose) and not offset by a random content vector.
        nn.init.zeros_(self.model.audio_content.fc.weight)
        nn.init.zeros_(self.model.audio_content.fc.bias)
        self.discriminator = make_discriminator(cfg.model.discriminator, cfg.model.image_size)
        self.attributes = nn.Linear(cfg.model.id_dim, 2 + 1 + len(ETHNICITIES))  # gender, age, ethnicity
        self.centroid_loss = CentroidLoss()

    def set_training(self) -> None:
        """Train mode and gradients for the parts this run trains; frozen parts (`cfg.frozen`) keep their
        weights and their batch-norm statistics."""
        self.train()
        self.requires_grad_(False)
        m = self.model
        for part in (m.visual_identity, m.visual_irrelevant, m.generator, m.centroids, self.attributes,
                     self.discriminator):  # fmt: skip
            part.requires_grad_(True)
        for name in self.cfg.frozen:
            getattr(m, name).requires_grad_(False)
            getattr(m, name).eval()

    def anchor_to(self, weights: str) -> None:
        """The frozen teacher of the anchors: a copy of G holding the generator of `weights`."""
        from ..hub import load_model, resolve

        teacher = copy.deepcopy(self.model.generator)
        theirs = load_model(resolve(weights)).generator.state_dict()
        mine = teacher.state_dict()
        misfit = sorted(k for k in mine.keys() | theirs.keys() if k not in mine or k not in theirs
                        or mine[k].shape != theirs[k].shape)  # fmt: skip
        if misfit:
            raise ValueError(
                f"{weights}: its generator differs from the recipe's ({len(misfit)} keys, e.g. {misfit[0]})"
            )
        teacher.load_state_dict(theirs, strict=True)
        self._anchor[:] = [teacher.requires_grad_(False).eval()]

    def _teacher(self, device: torch.device) -> nn.Module:
        teacher = self._anchor[0]
        if next(teacher.parameters()).device != device:
            teacher.to(device)
        return teacher

    def identity_of(self, image: torch.Tensor) -> torch.Tensor:
        """f_id^v of generated images with E_id^v's weights and batch-norm statistics left as they are."""
        return _frozen_call(self.model.visual_identity, image)

    def pose_of(self, image: torch.Tensor, dims: int = POSE_DIMS) -> torch.Tensor:
        """The pose (and mouth) E_ir^v reads in generated images, its weights left as they are (G alone
        answers for it); the pose entries from the pose reader with `faces.pose_cycle_reader`."""
        read = _frozen_call(self.model.visual_irrelevant, image)[:, :dims]
        if not self.cfg.faces.pose_cycle_reader:
            return read
        pose = _frozen_call(self.model.pose_reader, image).to(read.dtype)
        return torch.cat([pose[:, :dims], read[:, pose.shape[1] :]], dim=1)

    def forward(self, batch: dict, part: str, step: int = 0, fake: torch.Tensor | None = None):
        if part == "encoder":  # an identity run: E_id^v, W and the attribute heads alone
            metrics: dict = {}
            loss, _ = self._encoder_losses(batch, metrics)
            metrics["loss_g"] = loss.detach()
            return loss, metrics, None
        if part == "d":
            return self._d_step(batch, fake)
        if part == "r1":
            return self._r1(batch)
        return self._g_step(batch, step)

    def _encoder_losses(self, batch: dict, metrics: dict) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.cfg.faces
        if "visual_identity" in self.cfg.frozen:  # pretrained by an identity run: only its f_id is needed
            with torch.no_grad():
                f_id = self.model.visual_identity(batch["first"])
            return f_id.sum() * 0, f_id
        f_id = self.model.visual_identity(batch["first"])
        loss = f_id.sum() * 0
        labels = batch["label"]
        ok = labels >= 0
        if ok.any() and w.arcface:
            l_arc, m = self.centroid_loss(self.model.centroids, f_id[ok].float(), labels[ok])
            loss = loss + w.arcface * l_arc
            metrics.update({"arcface": l_arc.detach(), "arcface_acc": m["acc"]})
        heads = self.attributes(F.normalize(f_id.float(), dim=-1))
        terms = []
        g = batch["gender"]
        if (g >= 0).any():
            terms.append(F.cross_entropy(heads[g >= 0, :2], g[g >= 0]))
            metrics["gender_acc"] = (heads[g >= 0, :2].argmax(-1) == g[g >= 0]).float().mean()
        a = batch["age"]
        if (a >= 0).any():
            terms.append(F.smooth_l1_loss(heads[a >= 0, 2], a[a >= 0] / AGE_SCALE))
            metrics["age_mae"] = ((heads[a >= 0, 2] * AGE_SCALE - a[a >= 0]).abs().mean()).detach()
        e = batch["ethnicity"]
        if (e >= 0).any():
            terms.append(F.cross_entropy(heads[e >= 0, 3:], e[e >= 0]))
        if terms and w.attributes:
            loss = loss + w.attributes * sum(terms)
        return loss, f_id

    def _g_step(self, batch: dict, step: int):
        w, metrics = self.cfg.faces, {}
        m = self.model
        loss, f_id = self._encoder_losses(batch, metrics)
        f_id = F.normalize(f_id.detach().float(), dim=-1)
        f_ir = m.visual_irrelevant(_relight(batch["frame"]))
        told_dims = POSE_DIMS + (1 if w.mouth else 0)
        if w.pose and "pose" in batch:
            target = batch["pose"]
            ok = torch.isfinite(target[:, 0])
            if ok.any():
                err = F.smooth_l1_loss(f_ir[ok, :POSE_DIMS].float(), target[ok])
                metrics["pose_err"] = err.detach()
                loss = loss + w.pose * err
            if w.mouth:
                said = torch.isfinite(batch["mouth"])
                if said.any():
                    err = F.smooth_l1_loss(f_ir[said, POSE_DIMS].float(), batch["mouth"][said])
                    metrics["mouth_err"] = err.detach()
                    loss = loss + w.mouth * err
                ok = ok & said
                target = torch.cat([target, batch["mouth"][:, None]], dim=1)
            # G draws a labelled target from its label (teacher forcing), so to G the pose entries mean the
            # labels' pose from the first step, not whatever the encoder reads so far
            told = torch.where(ok[:, None], target.nan_to_num().to(f_ir.dtype), f_ir[:, :told_dims])
            alone = ok & (torch.rand(len(f_ir), device=f_ir.device) < w.pose_alone)
            rest = f_ir[:, told_dims:] * (~alone[:, None]).to(f_ir.dtype)
            f_ir = torch.cat([told, rest], dim=1)
        else:
            alone = torch.zeros(len(f_ir), dtype=torch.bool, device=f_ir.device)
        keep = (torch.rand(len(f_ir), 1, device=f_ir.device) >= self.cfg.ir_dropout).to(f_ir.dtype)
        f_ir = f_ir * keep
        fake = m.generate(f_id, f_ir)
        real = batch["frame"]
        s = w.rec_size
        rec = (F.adaptive_avg_pool2d(fake.float(), s) - F.adaptive_avg_pool2d(real.float(), s)).abs().mean()
        r0, r1, c0, c1 = (int(f * fake.shape[-1]) for f in ReconstructionLoss.MOUTH)
        # a face drawn from its pose alone was not told how open the target's mouth is (unless the mouth entry said)
        told_mouth = ~alone if (~alone).any() and not w.mouth else torch.ones_like(alone)
        mouth = (fake[told_mouth, :, r0:r1, c0:c1].float() - real[told_mouth, :, r0:r1, c0:c1].float()).abs().mean()
        metrics.update({"rec_low": rec.detach(), "rec_mouth": mouth.detach()})
        loss = loss + w.rec_low * rec + w.rec_mouth * mouth
        codes, fakes, irs = [f_id], [fake], [f_ir]
        n_mix = int(round(len(f_id) * w.mix_share))
        if n_mix:
            order = torch.randperm(len(f_id), device=f_id.device)
            t = torch.rand(n_mix, 1, device=f_id.device)
            f_mix = slerp(f_id[:n_mix], f_id[order[:n_mix]], t)
            f_ir_mix = f_ir.detach()[order.flip(0)[:n_mix]]
            if w.pose:  # the pose of yet another photo: pose entries that vary apart from the rest of f_ir
                other = torch.randperm(len(f_id), device=f_id.device)[:n_mix]
                f_ir_mix = torch.cat([f_ir.detach()[other, :told_dims], f_ir_mix[:, told_dims:]], dim=1)
            codes.append(f_mix)
            irs.append(f_ir_mix)
            fakes.append(m.generate(f_mix, f_ir_mix))
        all_fake = torch.cat(fakes)
        adv = adversarial_g(self.discriminator(diff_augment(all_fake, w.augment)))
        metrics["adv_g"] = adv.detach()
        loss = loss + w.adv * adv
        if w.identity and step >= w.identity_start:
            cos = F.cosine_similarity(self.identity_of(all_fake).float(), torch.cat(codes), dim=-1)
            metrics["id_cos"] = cos.mean().detach()
            loss = loss + w.identity * (1 - cos).mean()
        if w.pose_cycle:  # the pose asked for (0 where f_ir was dropped: the set's typical, level pose)
            asked = torch.cat(irs)[:, :told_dims].detach().float()
            cycle = F.smooth_l1_loss(self.pose_of(all_fake, told_dims).float(), asked)
            metrics["pose_cycle"] = cycle.detach()
            loss = loss + w.pose_cycle * cycle
        if w.anchor:
            with torch.no_grad():
                ref = self._teacher(all_fake.device)(m.generator_input(torch.cat(codes), torch.cat(irs)))
            s = w.rec_size
            anchor = (F.adaptive_avg_pool2d(all_fake.float(), s) - F.adaptive_avg_pool2d(ref.float(), s)).abs().mean()
            metrics["anchor"] = anchor.detach()
            loss = loss + w.anchor * anchor
        if w.anchor_mouth:
            loss = loss + w.anchor_mouth * self._mouth_anchor(f_id, f_ir.detach(), metrics)
        metrics["loss_g"] = loss.detach()
        return loss, metrics, all_fake

    def _mouth_anchor(self, f_id: torch.Tensor, f_ir: torch.Tensor, metrics: dict) -> torch.Tensor:
        """Full-resolution L1 in the mouth box between G's and the teacher's faces for half the batch's codes,
        the mouth entry drawn uniformly over `anchor_mouth_range`: G keeps drawing the teacher's mouths for
        what the voice sets there."""
        w, m = self.cfg.faces, self.model
        n = max(1, len(f_id) // 2)
        lo, hi = w.anchor_mouth_range
        ir = f_ir[:n].clone()
        ir[:, POSE_DIMS] = torch.empty(n, device=ir.device, dtype=ir.dtype).uniform_(lo, hi)
        drawn = m.generate(f_id[:n], ir)
        with torch.no_grad():
            ref = self._teacher(drawn.device)(m.generator_input(f_id[:n], ir))
        r0, r1, c0, c1 = (int(f * drawn.shape[-1]) for f in ReconstructionLoss.MOUTH)
        err = (drawn[:, :, r0:r1, c0:c1].float() - ref[:, :, r0:r1, c0:c1].float()).abs().mean()
        metrics["anchor_mouth"] = err.detach()
        return err

    def _d_step(self, batch: dict, fake: torch.Tensor):
        aug = self.cfg.faces.augment
        d_real = self.discriminator(diff_augment(batch["frame"], aug))
        d_fake = self.discriminator(diff_augment(fake.detach(), aug))
        loss = adversarial_d(d_real, d_fake)
        metrics = {"loss_d": loss.detach(), "d_real": d_real[0][-1].mean().detach(),
                   "d_fake": d_fake[0][-1].mean().detach()}  # fmt: skip
        return loss, metrics, None

    def _r1(self, batch: dict):
        w = self.cfg.faces
        real = batch["frame"].detach().requires_grad_(True)
        out = self.discriminator(diff_augment(real, w.augment))[0][-1]
        (grad,) = torch.autograd.grad(out.sum(), real, create_graph=True)
        penalty = grad.pow(2).flatten(1).sum(1).mean()
        return w.r1 / 2 * penalty * w.r1_every, {"r1": penalty.detach()}, None


def _frozen_call(enc: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """`enc(image)` with its weights detached and its buffers untouched: a judge for G inside training."""
    params = {k: v.detach() for k, v in enc.named_parameters()}
    buffers = {k: v.clone() for k, v in enc.named_buffers()}
    was = enc.training
    enc.eval()
    try:
        return functional_call(enc, {**params, **buffers}, (image,))
    finally:
        enc.train(was)


def _relight(image: torch.Tensor) -> torch.Tensor:
    """f_ir's view of the target: the same geometry with another exposure and colour balance, so that
    E_ir^v carries pose and expression, not skin or hair colour."""
    b = image.shape[0]
    gain = torch.empty(b, 3, 1, 1, device=image.device).uniform_(0.7, 1.3)
    shift = torch.empty(b, 1, 1, 1, device=image.device).uniform_(-0.2, 0.2)
    gray = image.mean(dim=1, keepdim=True)
    sat = torch.empty(b, 1, 1, 1, device=image.device).uniform_(0.3, 1.0)
    return ((gray + (image - gray) * sat) * gain + shift).clamp(-1, 1).to(image.dtype)


def _sample_grid(module: FacePriorModule, batch: dict, ema: dict, path: Path) -> None:
    """Rows: identity photo, target, G(f_id, f_ir) with the EMA generator, G(f_id, 0) (no pose given),
    and a slerp halfway to the next person."""
    from ..images import grid, png_bytes, to_uint8
    from ..outputs import write_bytes_atomic
    from .trainer import ema_generator

    model = module.model
    gen = ema_generator(model.generator, ema)
    was = module.training
    module.eval()
    with torch.no_grad():
        n = min(8, len(batch["frame"]))
        f_id = F.normalize(model.visual_identity(batch["first"][:n]).float(), dim=-1)
        f_ir = model.visual_irrelevant(batch["frame"][:n])
        noise = gen.make_noise(0, f_id.device)
        scale = model.cfg.id_dim**0.5

        def draw(code: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
            return gen(torch.cat([code * scale, ir], -1), noise)

        mixed = slerp(f_id, f_id.roll(1, 0), torch.full((n, 1), 0.5))
        rows = [batch["first"][:n], batch["frame"][:n], draw(f_id, f_ir), draw(f_id, torch.zeros_like(f_ir)),
                draw(mixed, torch.zeros_like(f_ir))]  # fmt: skip
    if was:
        module.set_training()
    tiles = [tile for row in rows for tile in to_uint8(row)]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, png_bytes(grid(tiles, columns=n), {"s2tf:synthetic": "true"}))


def train_face_prior(
    cfg: TrainConfig,
    out: Path,
    max_steps: int | None = None,
    cpu: bool | None = None,
    progress: Callable[[int, int, dict], None] | None = None,
) -> dict:
    """Run (or resume) the GAN stage into `out`; stops after `max_steps` total steps if given."""
    from .trainer import (
        _append_csv,
        _ema_update,
        _truncate_logs,
        ema_decay_at,
        load_speaker_backbone,
        make_accelerator,
        transfer_generator,
        warm_start,
    )

    accelerator = make_accelerator(cpu, cfg.precision)
    rank = accelerator.process_index
    out = Path(out)
    faces = FaceSet(cfg.faceset, cfg.model.image_size)
    if cfg.faces.pose and not cfg.steps.identity:
        if not np.isfinite(faces.pose[:, 0]).any():
            raise ValueError(f"{cfg.faceset}: the recipe teaches pose but the face set has no pose labels "
                             "(pose.csv: `s2tf data pose`)")  # fmt: skip
        cfg.model.pose_center = [round(float(v), 5) for v in faces.pose_center]
        cfg.model.pose_scale = [round(float(v), 5) for v in faces.pose_scale]
    if cfg.faces.mouth and not cfg.steps.identity:
        if not cfg.faces.pose:
            raise ValueError("the recipe's faces.mouth needs faces.pose: the mouth entry follows the pose entries")
        if not np.isfinite(faces.mouth).any():
            raise ValueError(f"{cfg.faceset}: the recipe teaches the mouth but pose.csv has no mouth column "
                             "(`s2tf data pose` again)")  # fmt: skip
        cfg.model.mouth_center = round(float(faces.mouth_center), 5)
        cfg.model.mouth_scale = round(float(faces.mouth_scale), 5)
    if cfg.faces.pose_cycle_reader and not cfg.model.pose_reader:  # its weights come with --init
        cfg.model.pose_reader = list(cfg.pose_reader)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        cfg.save(out / "train_config.json")
    if faces.num_labels > cfg.model.num_identities:
        raise ValueError(f"{cfg.faceset}: {faces.num_labels} labelled people but the model has "
                         f"{cfg.model.num_identities} centroids")  # fmt: skip
    if accelerator.is_main_process:
        (out / "labels.json").write_text(json.dumps(faces.labels_by_person, indent=0) + "\n")
    log.info("face set: %d photos, %d labelled people", len(faces), faces.num_labels)
    torch.manual_seed(cfg.seed)
    module = FacePriorModule(cfg)
    if cfg.faces.anchor or cfg.faces.anchor_mouth:
        module.anchor_to(cfg.anchor_init)
    m = module.model
    gen_main = [p for n, p in m.generator.named_parameters() if not n.startswith("mapping.")]
    enc = [
        p
        for part in (m.visual_identity, m.visual_irrelevant, m.centroids, module.attributes)
        for p in part.parameters()
    ]
    opt_g = torch.optim.Adam(
        [{"params": gen_main, "lr": cfg.lr},
         {"params": list(m.generator.mapping.parameters()), "lr": cfg.lr * cfg.faces.mapping_lr},
         {"params": enc, "lr": cfg.encoder_lr}], betas=tuple(cfg.betas),
    )  # fmt: skip
    opt_d = torch.optim.Adam(module.discriminator.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
    ema = {k: v.detach().clone() for k, v in m.generator.state_dict().items()}
    start, init_steps = 0, 0
    restored = checkpoint.load_latest(out / "checkpoints", module, {"g": opt_g, "d": opt_d}, ema)
    if restored:
        start, extra = restored
        init_steps = int(extra.get("init_steps", 0))
        log.info("resumed from step %d", start)
        # the recipe's learning rates, not the checkpoint's: a run may go on calmer than it began
        for group, lr in zip(opt_g.param_groups, (cfg.lr, cfg.lr * cfg.faces.mapping_lr, cfg.encoder_lr)):
            group["lr"] = lr
        for group in opt_d.param_groups:
            group["lr"] = cfg.lr
        if accelerator.is_main_process:
            _truncate_logs(out, start)
    elif cfg.init:
        init_steps = warm_start(module, ema, cfg.init, cfg.reinit)
    elif cfg.faces.pose_cycle_reader:
        raise ValueError("faces.pose_cycle_reader reads G's pose with a trained pose reader: give --init weights "
                         "that carry one (e.g. s2tf-real)")  # fmt: skip
    if cfg.generator_init and not restored:
        fresh = transfer_generator(m.generator, ema, cfg.generator_init)
        log.info("generator from %s; fresh: %s", cfg.generator_init, ", ".join(fresh) or "nothing")
    if cfg.audio_identity_init and not restored:  # carried through, so the export holds a working E_id^a
        load_speaker_backbone(module.model, cfg.audio_identity_init)
    wrapped, opt_g, opt_d = accelerator.prepare(module, opt_g, opt_d)
    ema = {k: v.to(accelerator.device) for k, v in ema.items()}
    module.set_training()
    encoder_only = cfg.steps.identity > 0
    total = cfg.steps.identity or cfg.steps.faces
    stop = min(total, max_steps) if max_steps is not None else total
    stage = "identity" if encoder_only else "faces"
    columns = IDENTITY_METRICS if encoder_only else METRICS
    seconds = float(restored[1].get("stage_seconds", {}).get(stage, 0.0)) if restored else 0.0
    fixed = faces.draw(cfg.batch_size, np.random.default_rng(cfg.seed + 12345), cfg.faces.real_share)
    metrics: dict = {}
    for step in range(start, stop):
        t0 = time.perf_counter()
        torch.manual_seed(cfg.seed * 1_000_003 + step * 97 + rank)
        rng = np.random.default_rng([cfg.seed, step, rank])
        batch = {k: v.to(accelerator.device) for k, v in faces.draw(cfg.batch_size, rng, cfg.faces.real_share).items()}
        with accelerator.autocast():
            loss_g, metrics, fake = wrapped(batch, "encoder" if encoder_only else "g", step)
        opt_g.zero_grad(set_to_none=True)
        if encoder_only or step >= cfg.discriminator_warmup:  # a fresh D first learns what G already draws
            accelerator.backward(loss_g)
            opt_g.step()
        if not encoder_only:
            with accelerator.autocast():
                loss_d, m_d, _ = wrapped(batch, "d", step, fake.detach())
            if cfg.faces.r1 and step % cfg.faces.r1_every == 0:
                loss_r1, m_r1, _ = wrapped(batch, "r1", step)  # fp32: the gradient penalty is not autocast
                loss_d = loss_d + loss_r1
                m_d.update(m_r1)
            opt_d.zero_grad(set_to_none=True)
            accelerator.backward(loss_d)
            opt_d.step()
            metrics.update(m_d)
            _ema_update(ema, m.generator, ema_decay_at(cfg, step))
        elapsed = time.perf_counter() - t0
        seconds += elapsed
        done = step + 1
        if accelerator.is_main_process:
            row = {"step": done, "stage": stage, "phase": "", "seconds": round(elapsed, 3),
                   **{k: round(float(metrics.get(k, float("nan"))), 5) for k in columns}}  # fmt: skip
            if done % cfg.log_every == 0 or done == stop:
                _append_csv(out / f"metrics-{stage}.csv", row)
            if progress:
                progress(done, stop, row)
            if not encoder_only and cfg.sample_every and (done % cfg.sample_every == 0 or done == stop):
                _sample_grid(module, {k: v.to(accelerator.device) for k, v in fixed.items()}, ema,
                             out / "samples" / f"step-{done:07d}.png")  # fmt: skip
        if done % cfg.checkpoint_every == 0 or done == stop:
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                checkpoint.save(out / "checkpoints", done, module, {"g": opt_g, "d": opt_d}, ema,
                                {"stage_seconds": {stage: seconds}, "init_steps": init_steps},
                                keep=cfg.keep_checkpoints)  # fmt: skip
    accelerator.wait_for_everyone()
    summary = {"steps": stop, "total_steps": total, "stage_seconds": {stage: seconds}, "init": cfg.init,
               "init_steps": init_steps, "device": accelerator.device.type,
               "last": {k: float(v) for k, v in metrics.items()}}  # fmt: skip
    if accelerator.is_main_process:
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
