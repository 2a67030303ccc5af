"""`s2tf train CONFIG`: the three stages in one loop, on one CPU, one GPU or many (Accelerate).

The same command scales out: `accelerate launch -m s2tf_cli train CONFIG --out DIR` runs one
process per device, each drawing its own batches (rank-seeded); bf16 autocast on GPUs. Batches and
random noise are functions of (seed, step, rank), and checkpoints hold every state, so a resumed
run continues exactly where it stopped.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from ..config import ConfigError
from ..models.s2tf import S2TFModel
from ..precision import PRECISIONS, native_bf16
from . import checkpoint
from .config import TrainConfig
from .corpus import BatchSpec, Corpus, draw_batch, draw_photos, join_batches, model_input
from .stages import STAGES, TrainingModule, stage_at

log = logging.getLogger(__name__)


def mixed_precision(precision: str, use_cpu: bool) -> str:
    """Accelerate's mixed_precision for a recipe's `precision`: "bf16" or "no" (fp32)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"train config 'precision' must be auto, fp32 or bf16, not {precision!r}")
    if precision == "auto":
        return "bf16" if not use_cpu or native_bf16(torch.device("cpu")) else "no"
    return "bf16" if precision == "bf16" else "no"


def make_accelerator(cpu: bool | None = None, precision: str = "auto"):
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from accelerate.state import AcceleratorState

    use_cpu = (not torch.cuda.is_available()) if cpu is None else cpu
    mode = mixed_precision(precision, use_cpu)
    shared = AcceleratorState._shared_state
    on_other_device = use_cpu and getattr(shared.get("device"), "type", "cpu") != "cpu"
    if shared and (shared.get("_mixed_precision") != mode or on_other_device):
        # Accelerate keeps one process-wide state and refuses a second recipe in the same process
        # (a notebook or a test suite training fp32, then bf16); the process group is left alone.
        AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(
        cpu=use_cpu,
        mixed_precision=mode,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )


def _perceptual(cfg: TrainConfig):
    from .losses import VGG19Features

    if cfg.perceptual in ("vgg19", "auto") and cfg.vgg19_weights and Path(cfg.vgg19_weights).is_file():
        log.info("perceptual loss: VGG19 features from %s", cfg.vgg19_weights)
        return VGG19Features.from_file(cfg.vgg19_weights)
    if cfg.perceptual == "vgg19":
        raise FileNotFoundError(f"perceptual='vgg19' but no VGG19 weights at {cfg.vgg19_weights!r}")
    log.info("perceptual loss: multi-scale discriminator feature matching (no local VGG19 weights)")
    return None


def _ema_update(ema: dict[str, torch.Tensor], generator: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for k, v in generator.state_dict().items():
            if v.dtype.is_floating_point:
                ema[k].lerp_(v.detach(), 1 - decay)
            else:
                ema[k].copy_(v)


def ema_decay_at(cfg: TrainConfig, step: int) -> float:
    """StyleGAN2's ramp-up: the EMA's half-life is at most `ema_rampup` of the steps so far, so a short
    run's EMA is not dominated by its first, untrained weights."""
    if cfg.ema_rampup <= 0:
        return cfg.ema_decay if step > 100 else 0.0
    return min(cfg.ema_decay, 0.5 ** (1.0 / max(cfg.ema_rampup * (step + 1), 1e-8)))


def ema_generator(generator: torch.nn.Module, ema: dict[str, torch.Tensor]) -> torch.nn.Module:
    """A copy of G holding the EMA weights (what sample grids and exports show)."""
    gen = copy.deepcopy(generator)
    gen.load_state_dict(ema)
    return gen


def _sample_grid(module: TrainingModule, batch: dict, ema: dict, path: Path) -> None:
    """Real frames over reconstructions with the EMA generator (visual features)."""
    from ..images import grid, png_bytes, to_uint8
    from ..outputs import write_bytes_atomic

    model = module.model
    gen = ema_generator(model.generator, ema)
    was = model.training
    model.eval()
    with torch.no_grad():
        n = min(8, len(batch["frame"]))
        f_id = model.visual_identity(batch["first"][:n])
        f_ir = model.visual_irrelevant(batch["frame_aug"][:n])
        f_id = torch.nn.functional.normalize(f_id, dim=-1) * model.cfg.id_dim**0.5
        fake = gen(torch.cat([f_id, f_ir], -1), gen.make_noise(0, f_id.device))
    model.train(was)
    tiles = list(to_uint8(batch["frame"][:n])) + list(to_uint8(fake))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, png_bytes(grid(tiles, columns=n), {"s2tf:synthetic": "true"}))


def _tensorboard(out: Path):
    """A SummaryWriter when tensorboard is installed, else None (the CSV logs are always written)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(out / "tensorboard"))


def train(
    cfg: TrainConfig,
    out: Path,
    max_steps: int | None = None,
    cpu: bool | None = None,
    progress: Callable[[int, int, dict], None] | None = None,
) -> dict:
    """Run (or resume) training into `out`; stops after `max_steps` total steps if given."""
    inherit_pose(cfg)
    if cfg.steps.faces or cfg.steps.identity:
        from .face_prior import train_face_prior

        return train_face_prior(cfg, out, max_steps, cpu, progress)
    if cfg.steps.voices:
        from .voice_stage import train_voice_stage

        return train_voice_stage(cfg, out, max_steps, cpu, progress)
    if cfg.steps.pose_reader:
        from .pose_reader_stage import train_pose_reader_stage

        return train_pose_reader_stage(cfg, out, max_steps, cpu, progress)
    if cfg.steps.mouth_teacher:
        from .mouth_teacher_stage import train_mouth_teacher_stage

        return train_mouth_teacher_stage(cfg, out, max_steps, cpu, progress)
    accelerator = make_accelerator(cpu, cfg.precision)
    precision = "bf16" if accelerator.mixed_precision == "bf16" else "fp32"
    log.info("training on %s in %s", accelerator.device, precision)
    rank = accelerator.process_index
    out = Path(out)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        cfg.save(out / "train_config.json")
    corpus = Corpus(cfg.corpus, "train")
    if corpus.num_labels > cfg.model.num_identities:
        raise ValueError(
            f"corpus has {corpus.num_labels} training identities but the model has {cfg.model.num_identities} centroids"
        )
    torch.manual_seed(cfg.seed)  # the same initial weights in every process
    module = TrainingModule(cfg, _perceptual(cfg))
    model = module.model
    enc_params = [p for n, p in model.named_parameters() if not n.startswith("generator.")]
    opt_g = torch.optim.Adam(
        [{"params": list(model.generator.parameters()), "lr": cfg.lr},
         {"params": enc_params, "lr": cfg.encoder_lr}], betas=tuple(cfg.betas),
    )  # fmt: skip
    opt_d = torch.optim.Adam(module.discriminator.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
    ema = {k: v.detach().clone() for k, v in model.generator.state_dict().items()}
    start = 0
    init_steps = 0
    restored = checkpoint.load_latest(out / "checkpoints", module, {"g": opt_g, "d": opt_d}, ema)
    if restored:
        start = restored[0]
        init_steps = int(restored[1].get("init_steps", 0))
        log.info("resumed from step %d", start)
        if accelerator.is_main_process:
            _truncate_logs(out, start)
    elif cfg.init:
        fresh = {part: copy.deepcopy(getattr(model, part).state_dict()) for part in cfg.reinit}
        init_steps = warm_start(module, ema, cfg.init, cfg.reinit)
        log.info("continuing from %s (%d steps behind it)", cfg.init, init_steps)
        for part, state in fresh.items():
            getattr(model, part).load_state_dict(state, strict=True)
            log.info("%s starts afresh", part)
        if "generator" in fresh:
            ema.update({k: v.detach().clone() for k, v in model.generator.state_dict().items()})
        if cfg.imprint_centroids:
            log.info("centroids imprinted for %d training identities", imprint_centroids(model, corpus))
    if cfg.audio_identity_init and not restored:
        load_speaker_backbone(model, cfg.audio_identity_init)
        log.info("E_id^a's GE2E backbone from %s", cfg.audio_identity_init)
    wrapped, opt_g, opt_d = accelerator.prepare(module, opt_g, opt_d)
    ema = {k: v.to(accelerator.device) for k, v in ema.items()}
    a = cfg.model.audio
    spec = BatchSpec(
        batch_size=cfg.batch_size,
        identity_window=int(a.identity_window_s * a.sample_rate),
        content_window=a.content_window,
        hop=a.hop_length,
        context=module.context * a.hop_length,
        image_size=cfg.model.image_size,
        content_negatives=cfg.content_negatives,
        audio_augment=cfg.audio_augment,
        real_voice_share=cfg.real_voice_share,
    )
    if cfg.extra_face_share > 0 and not cfg.extra_faces:
        raise ValueError("train config 'extra_face_share' needs 'extra_faces' (a `s2tf data photos` folder)")
    photos = Corpus(cfg.extra_faces, "train") if cfg.extra_face_share > 0 else None
    n_photos = min(int(round(cfg.batch_size * cfg.extra_face_share)), cfg.batch_size - 1) if photos else 0
    photo_spec = dataclasses.replace(spec, batch_size=cfg.batch_size - n_photos)
    if n_photos:
        log.info("stage 1: %d of every %d faces from %s (%d people)", n_photos, cfg.batch_size, cfg.extra_faces,
                 len(photos.identities))  # fmt: skip
    total = cfg.steps.visual + cfg.steps.sync + cfg.steps.finetune
    stop = min(total, max_steps) if max_steps is not None else total
    stage_time: dict[str, float] = {s: 0.0 for s in STAGES}
    if restored:  # wall time per stage adds up across resumes
        stage_time.update(restored[1].get("stage_seconds", {}))
    board = _tensorboard(out) if accelerator.is_main_process else None
    current = None
    metrics: dict = {}
    for step in range(start, stop):
        t0 = time.perf_counter()
        stage, phase = stage_at(cfg, step)
        if stage != current:
            module.set_stage(stage)
            current = stage
        torch.manual_seed(cfg.seed * 1_000_003 + step * 97 + rank)
        if stage == "visual" and n_photos:
            drawn = join_batches(draw_batch(corpus, photo_spec, cfg.seed, step, rank, audio=False),
                                 draw_photos(photos, n_photos, spec.image_size, cfg.seed, step, rank))  # fmt: skip
        else:
            drawn = draw_batch(corpus, spec, cfg.seed, step, rank, audio=stage != "visual")  # stage 1 hears nothing
        batch = {k: v.to(accelerator.device) for k, v in drawn.items()}
        adversarial = step >= cfg.loss.adv_start
        warming = step < cfg.discriminator_warmup  # D alone learns; G's forward only makes its fakes
        if warming:
            model.eval()  # batch-norm statistics wait too
        with accelerator.autocast(), torch.set_grad_enabled(not warming):
            loss_g, metrics, fake = wrapped(batch, stage, phase, "g", adversarial=adversarial)
        if warming:
            module.set_stage(stage)
        else:
            opt_g.zero_grad(set_to_none=True)
            accelerator.backward(loss_g)
            opt_g.step()
        if fake is not None and adversarial:
            with accelerator.autocast():
                loss_d, m_d, _ = wrapped(batch, stage, phase, "d", fake.detach())
            opt_d.zero_grad(set_to_none=True)
            accelerator.backward(loss_d)
            opt_d.step()
            metrics.update(m_d)
        elif fake is not None:
            metrics["loss_d"] = torch.zeros(())  # the discriminator rests during the warm-up
        if fake is not None and not warming:
            _ema_update(ema, model.generator, ema_decay_at(cfg, step))
        elapsed = time.perf_counter() - t0
        stage_time[stage] += elapsed
        done = step + 1
        if accelerator.is_main_process:
            row = {"step": done, "stage": stage, "phase": phase, "seconds": round(elapsed, 3),
                   **{k: round(float(v), 5) for k, v in metrics.items()}}  # fmt: skip
            if done % cfg.log_every == 0 or done == stop:
                _append_csv(out / f"metrics-{stage}{'-' + phase if phase else ''}.csv", row)
                if board is not None:
                    for key, value in metrics.items():
                        board.add_scalar(f"{stage}/{key}", float(value), done)
            if progress:
                progress(done, stop, row)
            if cfg.sample_every and done % cfg.sample_every == 0:
                _sample_grid(module, batch, ema, out / "samples" / f"step-{done:07d}.png")
                module.set_stage(stage)  # back to train mode, frozen parts (and their batch-norm statistics) kept
        if done % cfg.checkpoint_every == 0 or done == stop:
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                checkpoint.save(out / "checkpoints", done, module, {"g": opt_g, "d": opt_d}, ema,
                                {"stage_seconds": stage_time, "init_steps": init_steps}, keep=cfg.keep_checkpoints)  # fmt: skip
    accelerator.wait_for_everyone()
    if board is not None:
        board.close()
    summary = {"steps": stop, "total_steps": total, "stage_seconds": stage_time, "init": cfg.init,
               "init_steps": init_steps, "device": accelerator.device.type, "precision": precision,
               "last": {k: float(v) for k, v in metrics.items()}}  # fmt: skip
    if accelerator.is_main_process:
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def inherit_pose(cfg: TrainConfig) -> None:
    """A recipe continuing weights whose f_ir carries pose entries (a pose-taught GAN stage) keeps their
    meaning in its own model config, so every later export still says where pose is; likewise the voice
    stage's `voice_shift` and a pose-reader stage's reader (a later stage keeps it as it is)."""
    if not cfg.init or (cfg.model.pose_scale and cfg.model.voice_shift and cfg.model.pose_reader):
        return
    from ..config import ModelConfig
    from ..hub import resolve

    theirs = ModelConfig.load(resolve(cfg.init).folder / "config.json")
    if not cfg.model.pose_scale:
        cfg.model.pose_center, cfg.model.pose_scale = list(theirs.pose_center), list(theirs.pose_scale)
        cfg.model.mouth_center, cfg.model.mouth_scale = theirs.mouth_center, theirs.mouth_scale
        cfg.model.pose_render = list(theirs.pose_render)
    if not cfg.model.voice_shift:
        cfg.model.voice_shift = list(theirs.voice_shift)
    if not cfg.model.pose_reader:
        cfg.model.pose_reader = list(theirs.pose_reader)


def warm_start(module: TrainingModule, ema: dict[str, torch.Tensor], weights: str, reinit: list[str] = ()) -> int:
    """Load exported weights into the model (strict) and the EMA; the discriminator starts afresh.
    Parts in `reinit` start afresh, so they may differ from the weights' (e.g. another E_id^a).
    Returns the training steps already behind those weights."""
    from ..hub import load_model, resolve

    source = resolve(weights)
    trained = load_model(source)
    fresh = tuple(f"{part}." for part in reinit)
    mine = {k: v for k, v in module.model.state_dict().items() if not k.startswith(fresh)}
    theirs = {k: v for k, v in trained.state_dict().items() if not k.startswith(fresh)}
    wrong = [k for k in mine if k not in theirs or theirs[k].shape != mine[k].shape]
    if wrong or set(theirs) - set(mine):
        raise ValueError(f"{weights}: its model does not match the recipe's (e.g. {(wrong or sorted(theirs))[0]}); "
                         "continue with the same model config and the same corpus identities")  # fmt: skip
    missing, unexpected = module.model.load_state_dict(theirs, strict=False)
    assert not unexpected and all(k.startswith(fresh) for k in missing), (missing, unexpected)
    for key, value in module.model.generator.state_dict().items():
        ema[key].copy_(value)
    return trained.cfg.trained_steps


def transfer_generator(generator: torch.nn.Module, ema: dict[str, torch.Tensor], weights: str) -> list[str]:
    """Start `generator` (and its EMA) from another model's generator wherever a layer has the same name and
    shapes; a zero-initialised `input` layer keeps the start equal to the source's constant-input synthesis.
    Returns the keys that start fresh. Refuses a source that shares none of the synthesis blocks."""
    from ..hub import load_model, resolve

    theirs = load_model(resolve(weights)).generator.state_dict()
    mine = generator.state_dict()

    def layer(key: str) -> str:  # blocks.N.conv1 / conv2 / to_rgb, mapping.net.N, const, input
        parts = key.split(".")
        return ".".join(parts[:3]) if parts[0] == "blocks" else key.rpartition(".")[0] or key

    misfit = {layer(k) for k, v in mine.items() if k not in theirs or theirs[k].shape != v.shape}
    taken = {k: theirs[k] for k in mine if layer(k) not in misfit}  # whole layers only: no bias without its weight
    if not any(k.startswith("blocks.") and k.endswith("conv.weight") for k in taken):
        raise ValueError(f"{weights}: its generator shares no synthesis block with the recipe's")
    generator.load_state_dict(taken, strict=False)
    if getattr(generator, "input", None) is not None and "input.weight" not in taken:
        torch.nn.init.zeros_(generator.input.weight)
        torch.nn.init.zeros_(generator.input.bias)
    for key, value in generator.state_dict().items():
        ema[key].copy_(value)
    return sorted(k for k in mine if k not in taken)


def load_speaker_backbone(model: S2TFModel, path: str) -> None:
    """E_id^a's GE2E backbone from a safetensors file (`s2tf data ge2e`), every key and shape checked."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    backbone = getattr(model.audio_identity, "backbone", None)
    if backbone is None:
        raise ValueError(f"{path}: a GE2E backbone needs model.audio_identity.backbone 'ge2e'")
    try:
        state = load_file(path)
    except (OSError, SafetensorError) as exc:
        raise ValueError(f"{path}: cannot read a safetensors file: {exc}") from None
    mine = backbone.state_dict()
    wrong = sorted(
        k for k in set(mine) | set(state) if k not in mine or k not in state or mine[k].shape != state[k].shape
    )
    if wrong:
        raise ValueError(f"{path}: not a GE2E backbone of this config (e.g. key {wrong[0]})")
    backbone.load_state_dict(state, strict=True)


def imprint_centroids(model: S2TFModel, corpus: Corpus, frames: int = 4) -> int:
    """Set each training identity's row of W to the mean unit f_id^v of its clips' first frames (weight
    imprinting): continued weights then start with centroids on this corpus' people, not on the
    people the rows belonged to before. Returns the rows set."""
    by_label: dict[int, list] = defaultdict(list)
    for clip in corpus.clips:
        by_label[clip.label].append(clip)
    size = model.cfg.image_size
    was_training = model.visual_identity.training
    model.visual_identity.eval()
    with torch.no_grad():
        for label, clips in by_label.items():
            batch = model_input([corpus.shard(c).frame(0) for c in clips[:frames]], size)
            f = F.normalize(model.visual_identity(batch.to(model.centroids.weight.device)), dim=-1).mean(0)
            row = model.centroids.weight[label]
            row.copy_(F.normalize(f, dim=-1) * row.norm())
    model.visual_identity.train(was_training)
    return len(by_label)


def resume(out: Path, module: torch.nn.Module, optimizers: dict, ema: dict[str, torch.Tensor]) -> int:
    """For a one-process stage: the step its newest checkpoint in `out` reached (restored in place, the logs cut
    back to it), or 0 for a fresh run."""
    restored = checkpoint.load_latest(out / "checkpoints", module, optimizers, ema)
    if not restored:
        return 0
    _truncate_logs(out, restored[0])
    return restored[0]


def _truncate_logs(out: Path, step: int) -> None:
    """Drop metric rows past the checkpoint we resume from: those steps are about to be redone."""
    for path in out.glob("metrics-*.csv"):
        lines = path.read_text().splitlines()
        keep = lines[:1] + [ln for ln in lines[1:] if int(ln.split(",", 1)[0]) <= step]
        if len(keep) > 1:
            path.write_text("\n".join(keep) + "\n")
        else:
            path.unlink()


def _append_csv(path: Path, row: dict) -> None:
    """One CSV per stage and phase: within one every row has the same metrics."""
    exists = path.is_file()
    header = list(row)
    if exists:
        with open(path, newline="") as fh:
            header = next(csv.reader(fh), header)
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header, extrasaction="ignore", restval="")
        if not exists:
            writer.writeheader()
        writer.writerow(row)
