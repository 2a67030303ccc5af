"""Training recipe: one typed JSON file (`s2tf train CONFIG`) holding the model config, the corpus,
the three stages' lengths and every loss weight. Loaded strictly like the model config."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConfigError, ModelConfig, _build, preset, save_json

# stages that are a run of their own (`steps.<name>`; the three paper stages at 0 beside them)
OWN_RUNS = ("identity", "faces", "voices", "pose_reader", "mouth_teacher")
MODEL_PARTS = ("audio_identity", "audio_content", "visual_identity", "visual_irrelevant", "centroids", "generator")


@dataclass
class LossWeights:
    """Eq. 7: L_all = L_adv + λr L_rec + λc L_c + λ_id L_sync^id + λ_s L_sync^s (paper: all λ = 1)."""

    adv: float = 1.0  # multi-scale adversarial loss
    rec: float = 1.0  # λr: reconstruction L1 + λper * perceptual
    per: float = 1.0  # λper inside L_rec (VGG19 or discriminator feature matching)
    mouth: float = 0.0  # extra L1 weight on the mouth box inside L_rec (0: the paper's plain L1)
    centroid: float = 1.0  # λc: ArcFace on the shared centroids
    audio_centroid: float = -1.0  # λc of f_id^a's ArcFace alone (negative: λc). 0 with λc 1 ablates the
    # sharing itself: W and f_id^v keep their ArcFace, the voice is tied to the faces by InfoNCE only
    id_sync: float = 1.0  # λ_sync^id: Eq. 1 contrastive audio-visual identity loss
    s_sync: float = 1.0  # λ_sync^s: Eq. 3 contrastive content loss
    r1: float = 0.0  # R1 penalty on real images (0: off)
    novel_id: float = 0.0  # stage 3: L_adv weight on G(f_id*, f_s^a + f_ir^{v1}), f_id* each f_id^a turned a
    # random angle (up to `novel_angle`) off its own direction. Unseen voices land between the training
    # faces' identities, where G had no target and drew smears; this asks D to find those faces real too
    speech_mouth: float = 0.0  # stage 3, weights whose G has a mouth entry (model.mouth_scale): f_s^a's mouth
    # entry regresses E_ir^v's reading of frame k's mouth, a target of its own beside L_rec through G
    still: float = 0.0  # stage 3: L1 outside the mouth's surroundings between the frame drawn with f_s^a and
    # the same drawn with silence's f_s^a: speech moves the mouth and jaw, not hair, eyes or background
    adv_start: int = 0  # global step from which L_adv (and the discriminator's training) is on: a
    # reconstruction-only warm-up keeps the generator from collapsing while it is still far from faces

    @property
    def audio_arcface(self) -> float:
        """The weight of f_id^a's ArcFace term: `audio_centroid`, or λc where that is negative."""
        return self.centroid if self.audio_centroid < 0 else self.audio_centroid


@dataclass
class FacePriorLoss:
    """The GAN stage on photos (`steps.faces`, training/face_prior.py): G draws a realistic face for every
    point of the identity space, not only the people it saw. D judges every drawn face; the photo's own
    identity is asked of G only loosely (a low-resolution L1 and the identity encoder's cosine), so novel
    codes get faces as real as known ones."""

    adv: float = 1.0  # non-saturating L_adv on every generated face
    rec_low: float = 2.0  # L1 to the target photo after average-pooling both to `rec_size`: pose, layout, colour
    rec_size: int = 16
    rec_mouth: float = 1.0  # full-resolution L1 in the mouth box: f_ir must carry how open the mouth is, the
    # target the voice's content features are later synchronised to (a 16 px L1 sees a mouth as 2 pixels)
    identity: float = 1.0  # 1 - cos(E_id^v(G(f_id, f_ir)), f_id): the face keeps the identity it was given
    identity_start: int = 500  # steps before the identity term (E_id^v must first mean something)
    arcface: float = 1.0  # E_id^v's ArcFace on the shared W (people with an identity label)
    attributes: float = 1.0  # E_id^v's gender / age / ethnicity heads where the photo has labels
    r1: float = 0.1  # R1 gamma on D's real inputs
    r1_every: int = 4  # lazy R1: every N steps, scaled by N
    mix_share: float = 0.5  # extra faces per batch from novel identities (slerps between people) with
    # another photo's f_ir: there is no target, only D and the identity term judge them
    real_share: float = 0.25  # share of each batch drawn from photos of real-voice people (s2f, RAVDESS)
    augment: list[str] = field(default_factory=lambda: ["color", "translation", "cutout"])  # DiffAugment
    mapping_lr: float = 0.1  # the mapping MLP's lr as a fraction of G's (StyleGAN2: 0.01)
    pose: float = 0.0  # f_ir^v[:, :3] regresses the target's standardised yaw, pitch, roll (face set pose.csv)
    pose_cycle: float = 0.0  # E_ir^v (frozen for this term) reads back from each drawn face the pose it was given
    pose_cycle_reader: bool = False  # the cycle's pose entries read by the model's pose reader (frozen) instead:
    # G can satisfy E_ir^v's reading while the landmarks' yaw drifts (run 24); the reader reads geometry
    mouth: float = 0.0  # with `pose`: f_ir^v's entry after the pose entries regresses the target's standardised
    # mouth opening (pose.csv), G draws the target from it, and the cycle reads it back, as for pose
    anchor: float = 0.0  # L1 at `rec_size` between every drawn face and the face a frozen teacher G (the
    # top-level `anchor_init`) draws from the same codes: G may sharpen its texture (KID) but keeps the teacher's
    # layout and head turn (runs 24-25 lost some of the landmarks' yaw as KID fell)
    anchor_mouth: float = 0.0  # with `mouth`: a full-resolution L1 in the mouth box between G's and the teacher's
    # faces for half the batch's codes with the mouth entry set anew across speech's range: the voice drives that
    # entry at `talk`, and a GAN continuation let G follow it less (run 26: dev 0.96 -> 0.93, docs)
    anchor_mouth_range: list[float] = field(default_factory=lambda: [-0.5, 2.5])  # the entry's values (standardised)
    pose_alone: float = 0.0  # share of labelled targets G draws from their pose entries alone (the rest of f_ir
    # zero): the rest of f_ir^v carries pose too, and G that reads it there turns the head by a quarter of
    # what the pose entries alone ask, as `talk`'s head motion asks it


@dataclass
class StageSteps:
    identity: int = 0  # a run of its own before `faces`: E_id^v (with W and attribute heads) alone on the photos
    faces: int = 0  # a run of its own: the GAN on face photos (`faceset`); the others must be 0
    voices: int = 0  # a run of its own after `faces`: E_id^a's head on real voices (`voiceset`), all else frozen
    pose_reader: int = 0  # a run of its own after `faces`: the head-pose reader on the face set's pose labels
    mouth_teacher: int = 0  # a run of its own after the mouth stage: E_s^a's mouth entry learns a teacher's drawn
    # mouths on real voices (training/mouth_teacher_stage.py)
    visual: int = 2000  # stage 1: E_id^v, E_ir^v, G, D reconstruct frames
    sync: int = 1000  # stage 2: E_id^a, E_s^a synchronised to the frozen visual encoders
    finetune: int = 500  # stage 3: everything, driven by audio features
    sync_curriculum: float = 0.5  # fraction of stage 2 before same-identity negatives join (curriculum)
    finetune_audio_share: float = 0.5  # fraction of stage 3 that also draws from f_id^a ("audio-id"); 0 keeps
    # stage 3 on the photo's identity, e.g. to teach E_s^a the mouth through a frozen G without asking it
    # to mend a voice's identity as well


@dataclass
class TrainConfig:
    corpus: str = ""  # prepared corpus folder (s2tf data prepare OUT); may be overridden on the command line
    real_voices: str = ""  # optional extra real voice+face folder (RAVDESS layout) for the audio side
    model: ModelConfig = field(default_factory=lambda: preset("cpu"))
    init: str = ""  # weights (folder, registry name or Hub id) to continue from instead of a random start
    imprint_centroids: bool = False  # with `init`: W rows start at each training identity's mean f_id^v
    # (for continuing on a corpus whose people differ from the ones the weights were trained on)
    reinit: list[str] = field(default_factory=list)  # with `init`: model parts that start afresh instead
    # (e.g. ["audio_identity"] to retrain E_id^a alone on a corpus whose voices differ, for an ablation)
    generator_init: str = ""  # weights (folder, registry name or Hub id) whose generator's synthesis layers start
    # this one: every key of the same name and shape (const, blocks, to_rgb, the mapping's later layers), e.g. the
    # 128 px default's first 64 px; the rest (the mapping's first layer, `input`) starts fresh. A GAN that already
    # draws faces learns real photos in thousands of steps where one from noise needs tens of thousands
    anchor_init: str = ""  # weights (folder, registry name or Hub id) whose generator is the frozen teacher of
    # `faces.anchor` and `faces.anchor_mouth` (same generator layout as the recipe's; every key checked)
    audio_identity_init: str = ""  # safetensors file of a pretrained GE2E speaker encoder (`s2tf data ge2e`) that
    # E_id^a's backbone starts from, for audio_identity.backbone "ge2e" (loaded strictly; not on a resume)
    frozen: list[str] = field(default_factory=list)  # model parts that train in no stage (e.g. the visual
    # encoders and W while the generator alone learns from `extra_faces`, so the voice side stays in sync)
    extra_faces: str = ""  # photo corpus (`s2tf data photos`) whose people join stage 1's batches: no voices,
    # no ArcFace labels, many more faces than the talking corpus has, so G learns the space between its people
    extra_face_share: float = 0.0  # share of each stage-1 batch drawn from `extra_faces`
    discriminator_warmup: int = 0  # first steps in which D alone trains (G and the encoders wait): exported
    # weights bring no discriminator, so `init` starts a fresh one, and G answering to it at once learns speckle
    faceset: str = ""  # `s2tf data faces` folder for `steps.faces` and `steps.voices`
    voiceset: str = ""  # `s2tf data voices` folder for `steps.voices`
    steps: StageSteps = field(default_factory=StageSteps)
    loss: LossWeights = field(default_factory=LossWeights)
    faces: FacePriorLoss = field(default_factory=FacePriorLoss)
    batch_size: int = 16  # per process
    lr: float = 2e-3  # generator and discriminator (StyleGAN2's)
    encoder_lr: float = 5e-4  # encoders
    betas: list[float] = field(default_factory=lambda: [0.0, 0.99])
    sync_temperature: float = 0.2  # τ in the InfoNCE losses (paper's Eq. 1/3 use plain cosine, τ = 1)
    content_negatives: int = 4  # same-clip, off-sync audio windows per sample after the curriculum switch
    ir_dropout: float = 0.1  # chance of dropping the visual f_ir (stage 1: f_ir^v, stage 3: f_ir^{v1}, keeping
    # f_s^a) so G also learns the pose-free face G(cat(f_id, f_s^a)) that `s2tf face` draws without --pose
    voice_shift: bool = False  # voice stage: measure ModelConfig.voice_shift at its end
    pose_reader: list[int] = field(default_factory=lambda: [32, 64, 128, 256, 256])  # pose-reader stage: its widths
    # (ModelConfig.pose_reader), one halving of the crop each: 64 px -> a 2x2 map, flattened
    teacher: str = ""  # mouth-teacher stage: weights (folder, registry name or Hub id) whose drawn mouths teach
    voices: list[str] = field(default_factory=list)  # mouth-teacher stage: voice folders (s2f, LibriSpeech or
    # RAVDESS layout) whose training people's clips the teacher speaks
    teacher_clips_per_person: int = 10  # mouth-teacher stage: at most this many clips of one person
    teacher_dev_share: float = 0.05  # mouth-teacher stage: share of the training people held out to score it
    voice_dev_people: int = 0  # voice stage: this many training people with a photo are held out of its
    # training and scored in place of the validation people, so its recipe is chosen without looking at them
    target_pose: bool = False  # stage 3, for weights with pose entries (model.pose_scale) and E_ir^v frozen:
    # G draws frame k in frame k's pose as E_ir^v reads it, so f_s^a is not asked to explain head motion
    novel_angle: float = 1.0  # radians: the largest turn of f_id^a for the `novel_id` loss (1.0: ~57°, from
    # cosine ~0.55 to its own face down to ~0.3, where unseen voices sit)
    real_voice_share: float = 0.0  # share of each audio-stage batch drawn from the people who speak with their
    # own recorded voice (meta.csv voice "real", e.g. RAVDESS): a few dozen beside a thousand synthesized voices,
    # they would otherwise be ~2 % of what the audio encoders hear
    ema_decay: float = 0.999  # generator EMA used for export (the longest it averages over)
    ema_rampup: float = 0.05  # EMA half-life at most this fraction of the steps so far (StyleGAN2); 0: off
    audio_augment: bool = True  # noise, reverberation, band-limiting, gain, speed
    precision: str = "auto"  # "auto": bf16 autocast on GPUs and on CPUs with native bf16 (1.6-1.75x the steps/s
    # on a 2-core AVX512-BF16 CPU), fp32 elsewhere; or "fp32" / "bf16"
    seed: int = 0
    log_every: int = 10
    sample_every: int = 250
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    perceptual: str = "auto"  # "vgg19" (needs vgg19_weights), "features" (D feature matching) or "auto"
    vgg19_weights: str = ""  # safetensors file of torchvision-layout VGG19 features, when available locally

    def __post_init__(self) -> None:
        if not 0.0 <= self.real_voice_share <= 1.0:
            raise ConfigError(f"train config 'real_voice_share' must be in [0, 1], not {self.real_voice_share}")
        if not 0.0 <= self.extra_face_share < 1.0:
            raise ConfigError(f"train config 'extra_face_share' must be in [0, 1), not {self.extra_face_share}")
        for key in ("reinit", "frozen"):
            unknown = sorted(set(getattr(self, key)) - set(MODEL_PARTS))
            if unknown:
                raise ConfigError(f"train config '{key}': unknown model part(s) {', '.join(unknown)}; "
                                  f"known: {', '.join(MODEL_PARTS)}")  # fmt: skip
        if self.discriminator_warmup < 0:
            raise ConfigError(f"train config 'discriminator_warmup' must be >= 0, not {self.discriminator_warmup}")
        if self.audio_identity_init and self.model.audio_identity.backbone != "ge2e":
            raise ConfigError("train config 'audio_identity_init' needs model.audio_identity.backbone 'ge2e'")
        own = [k for k in OWN_RUNS if getattr(self.steps, k)]
        if own and (len(own) > 1 or self.steps.visual or self.steps.sync or self.steps.finetune):
            raise ConfigError(f"train config: 'steps.{own[0]}' is a run of its own; set the other stages to 0")
        if self.reinit and not self.init:
            raise ConfigError("train config 'reinit' needs 'init' (a random start is fresh already)")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model"] = self.model.to_dict()
        return d

    def save(self, path: str | Path) -> None:
        save_json(self.to_dict(), path)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = dict(data)
        model = data.pop("model", None)
        if not isinstance(model, dict):
            raise ConfigError("train config needs a 'model' object (a model config or {'preset': NAME})")
        if set(model) == {"preset"}:
            model_cfg = preset(model["preset"])
        else:
            model_cfg = ModelConfig.from_dict(model)
        defaults = dataclasses.asdict(cls(model=model_cfg))
        defaults.pop("model")
        unknown = sorted(set(data) - set(defaults))
        if unknown:
            raise ConfigError(f"unknown key(s) in train config: {', '.join(unknown)}")
        for key in ("steps", "loss", "faces"):  # nested sections may be partial: defaults fill the rest
            if key in data:
                if not isinstance(data[key], dict):
                    raise ConfigError(f"train config '{key}' must be an object")
                data[key] = {**defaults[key], **data[key]}
        return _build(cls, {**defaults, **data, "model": model_cfg}, "train config")

    @classmethod
    def load(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
        """The recipe at `path` with top-level `overrides` (the command line's --init, --corpus, ...) applied
        before it is checked, so a recipe may leave to the command line what only it can know. A recipe with
        `"base": "other.json"` (relative to its own folder) states only what differs from that one."""
        data = read_recipe(Path(path))
        try:
            return cls.from_dict({**data, **(overrides or {})})
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None


def read_recipe(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A recipe's JSON with its `base` chain merged in (nested objects key by key; lists and values replace)."""
    import json

    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read train config: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: train config must be a JSON object")
    base = data.pop("base", None)
    if base is None:
        return data
    parent = (path.parent / str(base)).resolve()
    if parent in seen or parent == path.resolve():
        raise ConfigError(f"{path}: 'base' {base} leads back to itself")
    if not parent.is_file():
        raise ConfigError(f"{path}: 'base' {base} is not a file beside it")
    return _merge(read_recipe(parent, (*seen, path.resolve())), data)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "model":
            out[key] = _merge(out[key], value)
        else:  # a model is a preset name or a whole config: it replaces, never mixes
            out[key] = value
    return out
