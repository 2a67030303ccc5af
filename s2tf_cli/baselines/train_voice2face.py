"""Training the Voice2Face-style baseline on a prepared corpus, the batches S2TF sees.

Two phases, as in Wen et al. 2019: the voice embedder learns speaker classification on the training
identities (their embedder was pretrained, then frozen); then, embedder frozen, the classifier C
learns the identities from real faces, the discriminator D real vs generated, and the generator
G(e_v) fools D while C recognises the speaker in it. Checkpoints and resume as in `s2tf train`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError, _build, save_json
from ..training import checkpoint
from ..training.corpus import BatchSpec, Corpus, draw_batch
from .voice2face import Critic, Voice2FaceConfig, Voice2FaceModel

log = logging.getLogger(__name__)


@dataclass
class Voice2FaceRecipe:
    baseline: str = "voice2face"  # tells `s2tf train` which trainer reads this file
    corpus: str = ""
    init: str = ""  # exported baseline weights to continue (folder or Hub id); D, C and optimisers start afresh
    model: Voice2FaceConfig = field(default_factory=Voice2FaceConfig)
    voice_steps: int = 500  # phase 1: speaker classification of the voice embedder
    gan_steps: int = 2000  # phase 2: G, D and C, embedder frozen
    batch_size: int = 16
    lr: float = 2e-4  # G, D, C (DCGAN's)
    voice_lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    audio_augment: bool = True
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 100
    keep_checkpoints: int = 2

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model"] = self.model.to_dict()
        return d

    def save(self, path: str | Path) -> None:
        save_json(self.to_dict(), path)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Voice2FaceRecipe:
        data = dict(data)
        model = data.pop("model", {})
        if not isinstance(model, dict):
            raise ConfigError("recipe 'model' must be an object")
        base = Voice2FaceConfig()
        if model.get("preset") == "tiny" and len(model) == 1:
            from .voice2face import tiny_config

            model_cfg = tiny_config()
        else:
            model_cfg = Voice2FaceConfig.from_dict({**base.to_dict(), **model})
        defaults = dataclasses.asdict(cls(model=model_cfg))
        defaults.pop("model")
        return _build(cls, {**defaults, **data, "model": model_cfg}, "voice2face recipe")

    @classmethod
    def load(cls, path: str | Path) -> Voice2FaceRecipe:
        from ..training.config import read_recipe

        try:
            return cls.from_dict(read_recipe(Path(path)))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None


class Voice2FaceTraining(nn.Module):
    """The exported model plus what only training needs: speaker head, discriminator, face classifier."""

    def __init__(self, cfg: Voice2FaceConfig):
        super().__init__()
        self.model = Voice2FaceModel(cfg)
        self.speaker_head = nn.Linear(cfg.embed_dim, cfg.num_identities)
        self.discriminator = Critic(cfg.critic, 1)
        self.classifier = Critic(cfg.critic, cfg.num_identities)


def train_voice2face(recipe: Voice2FaceRecipe, out: Path, max_steps: int | None = None, device: str = "cpu",
                     progress: Callable[[int, int, dict], None] | None = None) -> dict:  # fmt: skip
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    recipe.save(out / "train_config.json")
    corpus = Corpus(recipe.corpus, "train")
    cfg = recipe.model
    if corpus.num_labels > cfg.num_identities:
        raise ValueError(
            f"corpus has {corpus.num_labels} training identities but the model has {cfg.num_identities} classes"
        )
    torch.manual_seed(recipe.seed)
    module = Voice2FaceTraining(cfg).to(device)
    m = module.model
    opts = optimizers(module, recipe)
    restored = checkpoint.load_latest(out / "checkpoints", module, opts, {})
    start, init_steps = 0, 0
    if restored:
        start, init_steps = restored[0], int(restored[1].get("init_steps", 0))
    elif recipe.init:
        init_steps = warm_start(m, recipe.init)
    spec = batch_spec(recipe)
    total = recipe.voice_steps + recipe.gan_steps
    stop = min(total, max_steps) if max_steps is not None else total
    row: dict = {}
    for step in range(start, stop):
        t0 = time.perf_counter()
        torch.manual_seed(recipe.seed * 1_000_003 + step * 97)
        batch = {k: v.to(device) for k, v in draw_batch(corpus, spec, recipe.seed, step).items()}
        phase = "voice" if step < recipe.voice_steps else "gan"
        metrics = _voice_step(module, batch, opts) if phase == "voice" else _gan_step(module, batch, opts)
        done = step + 1
        row = {"step": done, "phase": phase, "seconds": round(time.perf_counter() - t0, 3),
               **{k: round(float(v), 5) for k, v in metrics.items()}}  # fmt: skip
        if done % recipe.log_every == 0 or done == stop:
            _append(out / f"metrics-{phase}.jsonl", row)
        if progress:
            progress(done, stop, row)
        if done % recipe.checkpoint_every == 0 or done == stop:
            checkpoint.save(out / "checkpoints", done, module, opts, {}, {"init_steps": init_steps},
                            keep=recipe.keep_checkpoints)  # fmt: skip
    summary = {"steps": stop, "total_steps": total, "init": recipe.init, "init_steps": init_steps, "last": row}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def optimizers(module: Voice2FaceTraining, recipe: Voice2FaceRecipe) -> dict[str, torch.optim.Optimizer]:
    m, betas = module.model, tuple(recipe.betas)
    return {
        "voice": torch.optim.Adam([*m.voice.parameters(), *module.speaker_head.parameters()], recipe.voice_lr),
        "g": torch.optim.Adam(m.generator.parameters(), recipe.lr, betas=betas),
        "d": torch.optim.Adam(module.discriminator.parameters(), recipe.lr, betas=betas),
        "c": torch.optim.Adam(module.classifier.parameters(), recipe.lr, betas=betas),
    }


def batch_spec(recipe: Voice2FaceRecipe) -> BatchSpec:
    """S2TF's batches without the content windows: the baseline hears only the identity window."""
    a, size = recipe.model.audio, recipe.model.image_size
    return BatchSpec(batch_size=recipe.batch_size, identity_window=int(a.identity_window_s * a.sample_rate),
                     content_window=a.content_window, hop=a.hop_length, context=0, image_size=size,
                     audio_augment=recipe.audio_augment)  # fmt: skip


def warm_start(model: Voice2FaceModel, weights: str) -> int:
    """Load exported baseline weights (strict, same model config) into `model`; returns their trained steps."""
    from ..hub import resolve
    from .voice2face import load_voice2face

    trained = load_voice2face(resolve(weights))
    mine = dataclasses.replace(model.cfg, trained_steps=0).to_dict()
    if dataclasses.replace(trained.cfg, trained_steps=0).to_dict() != mine:
        raise ValueError(f"{weights}: its model config differs from the recipe's; continue with the same model")
    model.load_state_dict(trained.state_dict(), strict=True)
    return trained.cfg.trained_steps


def _voice_step(module: Voice2FaceTraining, batch: dict, opts: dict) -> dict:
    module.train()
    m = module.model
    logits = module.speaker_head(m.embed(m.mel(batch["id_audio"])) * 10.0)  # scaled cosine logits
    loss = F.cross_entropy(logits, batch["label"])
    opts["voice"].zero_grad(set_to_none=True)
    loss.backward()
    opts["voice"].step()
    return {"speaker_ce": loss.detach(), "speaker_acc": (logits.argmax(1) == batch["label"]).float().mean()}


def _gan_step(module: Voice2FaceTraining, batch: dict, opts: dict) -> dict:
    m = module.model
    module.train()
    m.voice.eval()
    with torch.no_grad():
        e = m.embed(m.mel(batch["id_audio"]))
    real, label = batch["frame"], batch["label"]
    fake = m.generator(e)
    # C on real faces, D on real vs generated
    c_real = module.classifier(real)
    loss_c = F.cross_entropy(c_real, label)
    loss_d = F.softplus(-module.discriminator(real)).mean() + F.softplus(module.discriminator(fake.detach())).mean()
    opts["c"].zero_grad(set_to_none=True)
    opts["d"].zero_grad(set_to_none=True)
    (loss_c + loss_d).backward()
    opts["c"].step()
    opts["d"].step()
    # G: fool D, be recognised by C as the speaker
    c_fake = module.classifier(fake)
    loss_g = F.softplus(-module.discriminator(fake)).mean() + F.cross_entropy(c_fake, label)
    opts["g"].zero_grad(set_to_none=True)
    loss_g.backward()
    opts["g"].step()
    return {"loss_g": loss_g.detach(), "loss_d": loss_d.detach(), "face_ce": loss_c.detach(),
            "face_acc": (c_real.argmax(1) == label).float().mean(),
            "fake_acc": (c_fake.argmax(1) == label).float().mean(),
            "l1_to_frame": (fake.detach() - real).abs().mean()}  # fmt: skip


def _append(path: Path, row: dict) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(row) + "\n")


def export_voice2face(run: Path, out: Path) -> Path:
    """The newest checkpoint of a run -> a weights folder (config.json, model.safetensors, README.md)."""
    from safetensors.torch import load_file

    from ..hub import save_folder
    from ..modelcard import RESPONSIBLE_USE

    run = Path(run)
    found = checkpoint.checkpoints(run / "checkpoints")
    if not found:
        raise FileNotFoundError(f"{run}: no checkpoint found")
    recipe = Voice2FaceRecipe.load(run / "train_config.json")
    meta = json.loads((found[0] / "state.json").read_text())
    step = int(meta["step"])
    init_steps = int(meta.get("extra", {}).get("init_steps", 0))
    cfg = dataclasses.replace(recipe.model, trained_steps=init_steps + step)
    model = Voice2FaceModel(cfg)
    state = load_file(str(found[0] / "module.safetensors"))
    model.load_state_dict(
        {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}, strict=True
    )
    behind = (
        (
            f", {step} of them in this run, continued from `{recipe.init}` (its discriminator and classifier "
            f"started afresh)"
        )
        if init_steps
        else ""
    )
    card = (f"---\nlibrary_name: s2tf\ntags: [speech-to-face, baseline]\n---\n\n# Voice2Face-style baseline "
            f"({init_steps + step} training steps{behind})\n\nA comparison model for `s2tf eval` (after Wen et al., NeurIPS 2019): voice "
            f"embedder + DCGAN generator trained with a discriminator and an identity classifier, on the corpus "
            f"`{recipe.corpus}`. It draws frontal faces only.\n\n{RESPONSIBLE_USE}\n")  # fmt: skip
    return save_folder(model, out, card)


def is_baseline_recipe(path: Path) -> bool:
    from ..training.config import read_recipe

    try:
        return read_recipe(Path(path)).get("baseline") == "voice2face"
    except ConfigError:
        return False
