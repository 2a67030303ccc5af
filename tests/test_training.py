"""Training: two steps of each stage, exact resume, checkpoint fallback, export -> `s2tf face`,
the CLI commands, and a 2-process CPU run through accelerate."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from s2tf_cli.cli import app
from s2tf_cli.config import ConfigError, preset
from s2tf_cli.training.config import OWN_RUNS, TrainConfig
from s2tf_cli.training.stages import stage_at
from s2tf_cli.training.trainer import train

runner = CliRunner()


def _config(corpus: Path) -> TrainConfig:
    model = preset("tiny")
    cfg = TrainConfig(corpus=str(corpus), model=model)
    cfg.steps.visual, cfg.steps.sync, cfg.steps.finetune = 2, 2, 2
    cfg.steps.sync_curriculum = 0.5
    cfg.batch_size = 3
    cfg.content_negatives = 2
    cfg.checkpoint_every = 3
    cfg.sample_every = 2
    cfg.log_every = 1
    return cfg


def test_stage_schedule():
    cfg = TrainConfig()
    cfg.steps.visual, cfg.steps.sync, cfg.steps.finetune, cfg.steps.sync_curriculum = 10, 10, 10, 0.3
    assert [stage_at(cfg, s) for s in (0, 9, 10, 12, 13, 19, 20, 24, 25, 29)] == [
        ("visual", ""), ("visual", ""), ("sync", "other-ids"), ("sync", "other-ids"), ("sync", "same-id"),
        ("sync", "same-id"), ("finetune", "visual-id"), ("finetune", "visual-id"), ("finetune", "audio-id"),
        ("finetune", "audio-id"),
    ]  # fmt: skip
    cfg.steps.finetune_audio_share = 0.0  # stage 3 on the photo's identity alone
    assert {stage_at(cfg, s) for s in range(20, 30)} == {("finetune", "visual-id")}
    cfg.steps.finetune, cfg.steps.finetune_audio_share = 5, 0.5
    assert [stage_at(cfg, s)[1] for s in range(20, 25)] == ["visual-id"] * 2 + ["audio-id"] * 3


def test_train_config_strict_and_partial(tmp_path):
    cfg = TrainConfig.from_dict({"model": {"preset": "tiny"}, "steps": {"visual": 7}})
    assert cfg.steps.visual == 7 and cfg.steps.sync == TrainConfig().steps.sync
    from s2tf_cli.config import ConfigError

    with pytest.raises(ConfigError, match="unknown key.*nonsense"):
        TrainConfig.from_dict({"model": {"preset": "tiny"}, "nonsense": 1})
    cfg.save(tmp_path / "c.json")
    assert TrainConfig.load(tmp_path / "c.json") == cfg


def _params(run: Path) -> dict[str, torch.Tensor]:
    ckpt = sorted((run / "checkpoints").glob("ckpt-*"))[-1]
    return load_file(str(ckpt / "module.safetensors"))


def test_every_stage_trains_and_logs(prepared_corpus, tmp_path):
    cfg = _config(prepared_corpus)
    summary = train(cfg, tmp_path / "run", cpu=True)
    assert summary["steps"] == 6 and all(summary["stage_seconds"][s] > 0 for s in ("visual", "sync", "finetune"))
    for stage, keys in {"visual": ["v_l1", "vid_arcface", "loss_d"], "sync-same-id": ["aid_arcface", "id_sync", "s_sync"],
                        "finetune-audio-id": ["va_l1", "a_l1", "id_sync", "s_sync", "loss_d"]}.items():  # fmt: skip
        header = (tmp_path / "run" / f"metrics-{stage}.csv").read_text().splitlines()[0].split(",")
        assert set(keys) <= set(header), (stage, header)
    assert (tmp_path / "run" / "samples" / "step-0000002.png").is_file()


def test_sync_stage_freezes_visual_side(prepared_corpus, tmp_path):
    cfg = _config(prepared_corpus)
    cfg.checkpoint_every = 1
    cfg.keep_checkpoints = 10
    train(cfg, tmp_path / "run", cpu=True, max_steps=4)
    ckpts = sorted((tmp_path / "run" / "checkpoints").glob("ckpt-*"))
    after_visual = load_file(str(ckpts[1] / "module.safetensors"))
    after_sync = load_file(str(ckpts[3] / "module.safetensors"))
    for key, value in after_visual.items():
        frozen = key.startswith(("model.visual_", "model.generator.", "model.centroids.", "discriminator."))
        if frozen and value.dtype.is_floating_point:
            assert torch.equal(value, after_sync[key]), key
    assert not torch.equal(after_visual["model.audio_content.fc.weight"], after_sync["model.audio_content.fc.weight"])


def test_resume_equals_continue(prepared_corpus, tmp_path):
    cfg = _config(prepared_corpus)
    train(cfg, tmp_path / "straight", cpu=True)
    train(cfg, tmp_path / "stopped", cpu=True, max_steps=4)
    shutil.rmtree(tmp_path / "stopped" / "checkpoints" / "ckpt-0000004")  # as if killed before saving step 4
    train(cfg, tmp_path / "stopped", cpu=True)
    a, b = _params(tmp_path / "straight"), _params(tmp_path / "stopped")
    for log in (tmp_path / "stopped").glob("metrics-*.csv"):
        steps = [line.split(",")[0] for line in log.read_text().splitlines()[1:]]
        assert len(steps) == len(set(steps)), f"{log.name}: steps logged twice after the resume"
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_corrupt_last_checkpoint_falls_back(prepared_corpus, tmp_path):
    cfg = _config(prepared_corpus)
    cfg.checkpoint_every = 2
    run = tmp_path / "run"
    train(cfg, run, cpu=True, max_steps=4)
    last = sorted((run / "checkpoints").glob("ckpt-*"))[-1]
    (last / "module.safetensors").write_bytes(b"garbage")
    summary = train(cfg, run, cpu=True, max_steps=5)
    assert summary["steps"] == 5
    state = json.loads((sorted((run / "checkpoints").glob("ckpt-*"))[-1] / "state.json").read_text())
    assert state["step"] == 5


def test_cli_train_export_face(prepared_corpus, tmp_path):
    cfg = _config(prepared_corpus)
    cfg.corpus = ""
    cfg.save(tmp_path / "recipe.json")
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", str(tmp_path / "recipe.json"), "--out", str(run), "--corpus",
                                 str(prepared_corpus), "--cpu"])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    weights = tmp_path / "weights"
    result = runner.invoke(app, ["export", str(run), str(weights)])
    assert result.exit_code == 0, result.stderr
    assert {p.name for p in weights.iterdir()} == {"config.json", "model.safetensors", "README.md"}
    card = (weights / "README.md").read_text()
    assert "6 training steps" in card and "## Training" in card and "| visual |" in card
    assert "| celeb | train | 2 | 4 |" in card and "| real | train | 1 | 2 |" in card, "corpus per source"
    assert "non-commercial research use only" in card
    ema = load_file(str(sorted((run / "checkpoints").glob("ckpt-*"))[-1] / "ema.safetensors"))
    exported = load_file(str(weights / "model.safetensors"))
    assert torch.equal(exported["generator.const"], ema["const"]), "export uses the EMA generator"
    face = tmp_path / "face.png"
    voice = next(prepared_corpus.parent.glob("voices*/low.wav"), None) or _voice(tmp_path)
    result = runner.invoke(app, ["face", str(voice), "-o", str(face), "-w", str(weights)])
    assert result.exit_code == 0, result.stderr
    assert face.is_file()


def test_cli_train_seed_replaces_the_recipes_seed(prepared_corpus, tmp_path):
    """`--seed`: a replicate of one recipe; the run records the seed it used, and its weights differ."""
    cfg = _config(prepared_corpus)
    cfg.save(tmp_path / "recipe.json")
    modules = []
    for name, extra in (("plain", []), ("seed7", ["--seed", "7"])):
        run = tmp_path / name
        result = runner.invoke(app, ["train", str(tmp_path / "recipe.json"), "--out", str(run), "--max-steps", "1",
                                     "--cpu", *extra])  # fmt: skip
        assert result.exit_code == 0, result.stderr
        modules.append(load_file(str(sorted((run / "checkpoints").glob("ckpt-*"))[-1] / "module.safetensors")))
    assert json.loads((tmp_path / "plain" / "train_config.json").read_text())["seed"] == cfg.seed
    assert json.loads((tmp_path / "seed7" / "train_config.json").read_text())["seed"] == 7
    assert modules[0].keys() == modules[1].keys()
    assert any(not torch.equal(modules[0][k], modules[1][k]) for k in modules[0])


def _voice(tmp_path):
    import soundfile as sf
    from conftest import speechlike

    sf.write(tmp_path / "v.wav", speechlike(1.5), 16000)
    return tmp_path / "v.wav"


def test_cli_train_refuses_missing_corpus(tmp_path):
    TrainConfig(model=preset("tiny")).save(tmp_path / "r.json")
    result = runner.invoke(app, ["train", str(tmp_path / "r.json"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "not a prepared corpus" in result.stderr


def test_two_process_cpu_run(prepared_corpus, tmp_path):
    """`accelerate launch` with 2 CPU processes (gloo): both ranks step, rank 0 checkpoints."""
    cfg = _config(prepared_corpus)
    cfg.steps.visual, cfg.steps.sync, cfg.steps.finetune = 1, 1, 1
    cfg.sample_every = 0
    cfg.save(tmp_path / "recipe.json")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--cpu", "--num_machines",
           "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "s2tf_cli", "train",
           str(tmp_path / "recipe.json"), "--out", str(tmp_path / "run"), "--cpu"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == 3
    assert len(list((tmp_path / "run" / "checkpoints").glob("ckpt-*"))) >= 1


RECIPES = Path(__file__).resolve().parent.parent / "configs"
INIT_FROM_COMMAND_LINE = {
    "s2tf-real-faces.json",
    "s2tf-real-faces-transfer.json",
    "experiments/s2tf-real-faces-transfer-calm.json",
    "experiments/s2tf-real-faces-transfer-lowlr.json",
    "experiments/s2tf-real-faces-transfer-long.json",
    "experiments/s2tf-real-faces-transfer-no-identity.json",
    "experiments/s2tf-real-faces-transfer-identity-0.1.json",
    "experiments/s2tf-real-faces-pose.json",
    "experiments/s2tf-real-faces-pose-alone.json",
    "experiments/s2tf-real-faces-pose-mouth.json",
    "experiments/s2tf-real-faces-pose-mouth-40k.json",
    "experiments/s2tf-real-faces-pose-mouth-g-only-46k.json",
    "experiments/s2tf-real-faces-reader-cycle-50k.json",
    "experiments/s2tf-real-faces-reader-cycle-54k.json",
    "experiments/s2tf-real-faces-anchored-52k.json",
    "experiments/s2tf-real-faces-identity-3-52k.json",
    "experiments/s2tf-real-faces-anchored-mouth-54k.json",
    "experiments/s2tf-real-faces-mouth-anchor-58k.json",
    "experiments/s2tf-real-faces-mouth-anchor-8-60k.json",
}
FROM_SCRATCH = {
    "s2tf-cpu.json",
    "paper-voxceleb2.json",
    "experiments/ablation-no-centroids.json",
    "experiments/ablation-no-contrastive.json",
}


@pytest.mark.parametrize(
    "name", sorted(str(p.relative_to(RECIPES)) for p in RECIPES.rglob("*.json") if "voice2face" not in p.name)
)
def test_shipped_recipes_load(name):
    if name in INIT_FROM_COMMAND_LINE:  # restarts some parts of weights given by --init: refused without it
        with pytest.raises(ConfigError, match="'reinit' needs 'init'"):
            TrainConfig.load(RECIPES / name)
    cfg = TrainConfig.load(RECIPES / name, {"init": "weights"} if name in INIT_FROM_COMMAND_LINE else None)
    assert cfg.model.preset in ("cpu", "cpu-ge2e", "cpu-real", "paper")
    steps = (cfg.steps.visual, cfg.steps.sync, cfg.steps.finetune)
    own = sum(getattr(cfg.steps, k) for k in OWN_RUNS)
    assert min(steps) >= 0 and sum(steps) + own > 0
    if cfg.reinit:  # a part that starts afresh needs weights to start the rest from
        assert cfg.init
    if name in FROM_SCRATCH:  # continuation recipes (--init) may skip the stages they do not retrain
        assert min(steps) > 0


def test_continue_from_exported_weights(prepared_corpus, tmp_path):
    """`--init`: a later run starts from committed weights (not a checkpoint) and the step count adds up."""
    from s2tf_cli.hub import load_model, resolve
    from s2tf_cli.training.export import export
    from s2tf_cli.training.stages import TrainingModule
    from s2tf_cli.training.trainer import warm_start

    cfg = _config(prepared_corpus)
    cfg.steps.visual, cfg.steps.sync, cfg.steps.finetune = 1, 1, 1
    train(cfg, tmp_path / "first", cpu=True)
    first = export(tmp_path / "first", tmp_path / "w1")
    assert load_model(resolve(str(first))).cfg.trained_steps == 3

    module = TrainingModule(cfg, None)
    ema = {k: v.clone() for k, v in module.model.generator.state_dict().items()}
    assert warm_start(module, ema, str(first)) == 3
    exported = load_file(str(first / "model.safetensors"))
    mine = module.model.state_dict()
    assert mine.keys() == exported.keys() and all(torch.equal(mine[k], v) for k, v in exported.items())
    assert all(torch.equal(ema[k], exported[f"generator.{k}"]) for k in ema)

    cfg.init = str(first)
    cfg.imprint_centroids = True  # the path a continuation on a new corpus takes
    cfg.steps.visual, cfg.steps.sync = 0, 0
    cfg.steps.finetune = 2
    train(cfg, tmp_path / "second", cpu=True)
    second = export(tmp_path / "second", tmp_path / "w2")
    assert load_model(resolve(str(second))).cfg.trained_steps == 5
    card = (second / "README.md").read_text()
    assert "5 training steps, 2 of them in this run" in card and "continued from" in card

    bad = _config(prepared_corpus)
    bad.model = preset("tiny")
    bad.model.id_dim *= 2
    bad.init = str(first)
    with pytest.raises(ValueError, match="does not match"):
        train(bad, tmp_path / "bad", cpu=True)


def test_reinit_restarts_the_named_parts_and_keeps_the_rest(prepared_corpus, tmp_path):
    """`reinit` with `init`: E_id^a starts from the recipe's fresh weights, everything else from the
    exported ones (stage 1 leaves both audio encoders untouched, so they show which start they had)."""
    from s2tf_cli.training.export import export
    from s2tf_cli.training.stages import TrainingModule

    cfg = _config(prepared_corpus)
    cfg.steps.visual, cfg.steps.sync, cfg.steps.finetune = 1, 1, 0
    train(cfg, tmp_path / "first", cpu=True)
    first = load_file(str(export(tmp_path / "first", tmp_path / "w1") / "model.safetensors"))

    cfg.init, cfg.reinit = str(tmp_path / "w1"), ["audio_identity"]
    cfg.steps.visual, cfg.steps.sync = 1, 0
    train(cfg, tmp_path / "second", cpu=True)
    second = load_file(str(export(tmp_path / "second", tmp_path / "w2") / "model.safetensors"))
    torch.manual_seed(cfg.seed)
    fresh = TrainingModule(cfg, None).model.state_dict()
    audio_id = [k for k in second if k.startswith("audio_identity.")]
    audio_content = [k for k in second if k.startswith("audio_content.")]
    assert audio_id and audio_content
    assert all(torch.equal(second[k], fresh[k]) for k in audio_id)
    assert not all(torch.equal(second[k], first[k]) for k in audio_id), "stage 2 of the first run trained it"
    assert all(torch.equal(second[k], first[k]) for k in audio_content)

    with pytest.raises(ConfigError, match="unknown model part.*voice"):
        TrainConfig.from_dict({"model": {"preset": "tiny"}, "init": "x", "reinit": ["voice"]})
    with pytest.raises(ConfigError, match="'reinit' needs 'init'"):
        TrainConfig.from_dict({"model": {"preset": "tiny"}, "reinit": ["audio_identity"]})


def test_visual_batches_skip_the_audio_but_draw_the_same_frames(prepared_corpus):
    from s2tf_cli.training.corpus import BatchSpec, Corpus, draw_batch

    corpus = Corpus(prepared_corpus, "train")
    spec = BatchSpec(batch_size=3, identity_window=8000, content_window=16, hop=160, context=320, image_size=32,
                     content_negatives=2)  # fmt: skip
    full = draw_batch(corpus, spec, seed=1, step=7)
    silent = draw_batch(corpus, spec, seed=1, step=7, audio=False)
    audio_keys = {"id_audio", "content_audio", "neg_audio"}
    assert audio_keys <= set(full) and not audio_keys & set(silent)
    assert set(silent) == {"first", "frame", "frame_aug", "clip_first", "label"}
    assert all(torch.equal(full[k], silent[k]) for k in silent)
    assert not torch.equal(full["frame"], draw_batch(corpus, spec, seed=1, step=8, audio=False)["frame"])


def test_audio_augmentation_keeps_length_and_range_and_follows_its_generator():
    import numpy as np

    from s2tf_cli import augment

    rng = np.random.default_rng(0)
    wave = (0.3 * np.sin(np.arange(16000) * 0.05) + 0.05 * rng.standard_normal(16000)).astype(np.float32)
    outs = [augment.audio(wave, 16000, np.random.default_rng(s)) for s in (1, 1, 2)]
    assert all(o.shape == wave.shape and o.dtype == np.float32 and np.abs(o).max() <= 1 for o in outs)
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], outs[2])
    ir = rng.standard_normal(4000).astype(np.float32) * np.exp(-np.arange(4000) / 800).astype(np.float32)
    np.testing.assert_allclose(augment.reverberate(wave, ir), np.convolve(wave, ir)[:16000], atol=1e-4)


def test_real_voice_share_puts_the_real_speakers_in_every_audio_batch(prepared_corpus):
    import numpy as np

    from s2tf_cli.config import ConfigError
    from s2tf_cli.training.config import TrainConfig
    from s2tf_cli.training.corpus import BatchSpec, Corpus, draw_batch, pick_identities

    corpus = Corpus(prepared_corpus, "train")
    assert len(corpus.identities) == 4 and len(corpus.real_voice_indices) == 1  # the RAVDESS-like actor
    real = int(corpus.real_voice_indices[0])
    assert all(corpus.clips[i].voice == "real" for i in corpus.by_identity[corpus.identities[real]])
    shared = [pick_identities(corpus, 3, np.random.default_rng(s), 1 / 3) for s in range(20)]
    assert all(real in p and len(set(p.tolist())) == 3 for p in shared)
    plain = [pick_identities(corpus, 3, np.random.default_rng(s)) for s in range(20)]
    assert any(real not in p for p in plain)  # by chance a batch of 3 of 4 misses them a quarter of the time
    spec = BatchSpec(batch_size=3, identity_window=8000, content_window=16, hop=160, context=320, image_size=32)
    label = corpus.clips[corpus.by_identity[corpus.identities[real]][0]].label
    with_share = BatchSpec(**{**spec.__dict__, "real_voice_share": 1 / 3})
    for step in range(6):
        assert label in draw_batch(corpus, with_share, seed=1, step=step)["label"].tolist()
        # the visual stage hears nothing, so the share leaves its draws alone
        assert torch.equal(draw_batch(corpus, with_share, seed=1, step=step, audio=False)["frame"],
                           draw_batch(corpus, spec, seed=1, step=step, audio=False)["frame"])  # fmt: skip
    with pytest.raises(ConfigError, match="real_voice_share"):
        TrainConfig(real_voice_share=1.5)


def test_training_precision_follows_the_recipe(prepared_corpus, tmp_path):
    from s2tf_cli.config import ConfigError
    from s2tf_cli.precision import native_bf16
    from s2tf_cli.training.trainer import mixed_precision

    assert mixed_precision("fp32", use_cpu=True) == "no" and mixed_precision("bf16", use_cpu=True) == "bf16"
    assert mixed_precision("auto", use_cpu=False) == "bf16"
    assert mixed_precision("auto", use_cpu=True) == ("bf16" if native_bf16(torch.device("cpu")) else "no")
    with pytest.raises(ConfigError, match="precision"):
        mixed_precision("fp16", use_cpu=True)
    from s2tf_cli.training.trainer import make_accelerator

    # An fp32 run earlier in the same process (whatever this CPU's "auto" means) must not pin bf16 out.
    assert make_accelerator(cpu=True, precision="fp32").mixed_precision == "no"
    cfg = _config(prepared_corpus)
    cfg.steps.visual, cfg.steps.sync, cfg.steps.finetune = 1, 1, 1
    cfg.precision = "bf16"
    summary = train(cfg, tmp_path / "run", cpu=True)
    assert summary["precision"] == "bf16" and summary["device"] == "cpu"
    assert torch.isfinite(torch.tensor(summary["last"]["loss_g"]))
    from s2tf_cli.training.card import run_details

    assert "on cpu in bf16" in run_details(tmp_path / "run")


def test_imprinted_centroids_sit_on_each_identitys_faces(prepared_corpus):
    """Continuing on other people: W row k points at the mean f_id^v of identity k's first frames
    (up to 4 clips), keeps its length, and rows without an identity are left alone."""
    import torch.nn.functional as F

    from s2tf_cli.models.s2tf import S2TFModel
    from s2tf_cli.training.corpus import Corpus, model_input
    from s2tf_cli.training.trainer import imprint_centroids

    torch.manual_seed(0)
    model = S2TFModel(preset("tiny"))
    corpus = Corpus(prepared_corpus, "train")
    before = model.centroids.weight.detach().clone()
    assert imprint_centroids(model, corpus) == len(corpus.identities)
    w = model.centroids.weight.detach()
    assert torch.allclose(w.norm(dim=-1), before.norm(dim=-1)), "row lengths kept"
    model.eval()
    for label in {c.label for c in corpus.clips}:
        firsts = [corpus.shard(c).frame(0) for c in corpus.clips if c.label == label][:4]
        with torch.no_grad():
            f = F.normalize(model.visual_identity(model_input(firsts, model.cfg.image_size)), dim=-1).mean(0)
        assert F.cosine_similarity(f, w[label], dim=0) > 0.9999
        assert not torch.allclose(w[label], before[label])
    unused = [j for j in range(len(w)) if j not in {c.label for c in corpus.clips}]
    assert all(torch.equal(w[j], before[j]) for j in unused)


def test_ema_ramp_up_follows_the_run_length():
    from s2tf_cli.training.trainer import ema_decay_at

    cfg = TrainConfig()
    decays = [ema_decay_at(cfg, s) for s in range(0, 30000, 100)]
    assert decays == sorted(decays) and max(decays) == cfg.ema_decay
    # half-life = 5 % of the steps so far: after 0.05 * 2000 = 100 steps at step 2000, half the weight is left
    assert ema_decay_at(cfg, 1999) ** 100 == pytest.approx(0.5, rel=1e-6)
    cfg.ema_rampup = 0.0
    assert ema_decay_at(cfg, 50) == 0.0 and ema_decay_at(cfg, 500) == cfg.ema_decay


def test_kill_9_mid_run_loses_at_most_the_steps_since_the_last_checkpoint(prepared_corpus, tmp_path):
    """A real SIGKILL of `s2tf train` while it works; the rerun resumes from the newest whole checkpoint."""
    import os
    import signal
    import subprocess
    import sys
    import time

    cfg = _config(prepared_corpus)
    cfg.steps.visual, cfg.steps.sync, cfg.steps.finetune = 300, 2, 2
    cfg.checkpoint_every, cfg.sample_every = 2, 0
    cfg.save(tmp_path / "recipe.json")
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "s2tf_cli", "train", str(tmp_path / "recipe.json"), "-o", str(run), "--cpu"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not list((run / "checkpoints").glob("ckpt-0000006")) and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "summary.json").exists(), "the run must have been killed mid-way"
    done = [json.loads((c / "state.json").read_text())["step"] for c in (run / "checkpoints").glob("ckpt-*")]
    assert max(done) >= 6
    out = subprocess.run([*cmd, "--max-steps", str(max(done) + 4)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads((run / "summary.json").read_text())["steps"] == max(done) + 4
    steps = [int(line.split(",")[0]) for line in (run / "metrics-visual.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, max(done) + 5)), "every step logged exactly once across the kill"
    assert not list((run / "checkpoints").glob(".tmp-*")), "half-written checkpoints of the killed run are cleared"


def test_mouth_weight_adds_the_mouth_box_error_only():
    from s2tf_cli.training.losses import ReconstructionLoss

    real = torch.zeros(2, 3, 40, 40)
    fake = real.clone()
    fake[..., 0:5, 0:5] = 1.0  # an error outside the mouth
    plain, weighted = ReconstructionLoss(0.0, None), ReconstructionLoss(0.0, None, mouth_weight=5.0)
    assert torch.equal(plain(fake, real)[0], weighted(fake, real)[0])
    fake = real.clone()
    fake[..., 30, 15] = 1.0  # one pixel inside the box (rows 24-34, columns 12-28)
    base = plain(fake, real)[0]
    box = 1.0 / (10 * 16)
    torch.testing.assert_close(weighted(fake, real)[0], base + 5.0 * box)


def test_novel_identities_turn_each_row_within_the_angle():
    from s2tf_cli.training.stages import novel_identities

    torch.manual_seed(0)
    f = torch.nn.functional.normalize(torch.randn(64, 32), dim=-1)
    g = novel_identities(f * 3.0, 0.8)
    assert torch.allclose(g.norm(dim=-1), torch.ones(64), atol=1e-5)
    angles = torch.acos((f * g).sum(-1).clamp(-1, 1))
    assert float(angles.max()) <= 0.8 + 1e-4 and float(angles.min()) >= 0
    assert float(angles.std()) > 0.1, "angles spread over the range, not one fixed turn"
    assert torch.allclose(novel_identities(f, 0.0), f, atol=1e-6)


def test_novel_identity_loss_trains_and_logs(prepared_corpus, tmp_path):
    cfg = _config(prepared_corpus)
    cfg.steps.visual, cfg.steps.sync = 0, 0
    cfg.loss.novel_id = 0.5
    train(cfg, tmp_path / "run", cpu=True)
    for phase in ("visual-id", "audio-id"):
        rows = (tmp_path / "run" / f"metrics-finetune-{phase}.csv").read_text().splitlines()
        header = rows[0].split(",")
        assert "novel_adv" in header and "loss_d" in header
        assert float(rows[-1].split(",")[header.index("novel_adv")]) > 0


def test_audio_centroid_weighs_the_voices_arcface_alone(prepared_corpus):
    """`loss.audio_centroid` scales only f_id^a's ArcFace term; negative (the default) means λc."""
    from s2tf_cli.training.corpus import BatchSpec, Corpus, draw_batch
    from s2tf_cli.training.stages import TrainingModule

    cfg = _config(prepared_corpus)
    torch.manual_seed(0)
    module = TrainingModule(cfg, None).eval()
    a = cfg.model.audio
    spec = BatchSpec(batch_size=3, identity_window=int(a.identity_window_s * a.sample_rate),
                     content_window=a.content_window, hop=a.hop_length, context=module.context * a.hop_length,
                     image_size=cfg.model.image_size, audio_augment=False)  # fmt: skip
    batch = draw_batch(Corpus(prepared_corpus, "train"), spec, seed=0, step=0)
    f_v = torch.nn.functional.normalize(torch.randn(3, cfg.model.id_dim), dim=-1)
    f_ir = torch.randn(3, cfg.model.ir_dim)

    def total(weight: float) -> tuple[torch.Tensor, dict]:
        cfg.loss.audio_centroid, metrics = weight, {}
        with torch.no_grad():
            loss, _, _ = module._sync_losses(batch, "other-ids", f_v, f_ir, torch.zeros_like(f_ir), metrics)
        return loss, metrics

    cfg.loss.centroid = 1.0
    default, m = total(-1.0)
    off, _ = total(0.0)
    double, _ = total(2.0)
    assert m["aid_arcface"] > 0
    assert torch.allclose(default - off, m["aid_arcface"], atol=1e-5)
    assert torch.allclose(double - off, 2 * m["aid_arcface"], atol=1e-5)
    cfg.loss.centroid = 0.0
    assert torch.allclose(total(-1.0)[0], off, atol=1e-5), "negative follows λc"
    assert TrainConfig.from_dict({"model": {"preset": "tiny"}, "loss": {"audio_centroid": 0.0}}).loss.centroid == 1.0


def test_loss_table_first_and_last_rows_differ_on_a_short_log(tmp_path):
    """A log of fewer than two windows splits in halves: 'first rows' and 'last rows' never average
    the same rows (a 20-row stage once showed identical columns)."""
    from s2tf_cli.training.card import loss_table

    rows = ["step,stage,phase,seconds,aid_acc"] + [f"{10 * (i + 1)},sync,other-ids,0.1,{i / 10}" for i in range(20)]
    (tmp_path / "metrics-sync-other-ids.csv").write_text("\n".join(rows) + "\n")
    line = next(ln for ln in loss_table(tmp_path).splitlines() if "| aid_acc |" in ln)
    assert line == "| sync-other-ids | 10-200 | aid_acc | 0.450 | 1.450 |"
    long = ["step,stage,phase,seconds,aid_acc"] + [f"{i + 1},sync,same-id,0.1,{i}" for i in range(100)]
    (tmp_path / "metrics-sync-other-ids.csv").write_text("\n".join(long) + "\n")
    line = next(ln for ln in loss_table(tmp_path).splitlines() if "| aid_acc |" in ln)
    assert line == "| sync-other-ids | 1-100 | aid_acc | 9.500 | 89.500 |", "20-row windows on a long log"


# Weights recipes were run from that the default name no longer holds; they live in git history.
HISTORICAL_INITS = {"3189969dc114": "run 7, `git show f0ce929:weights/s2tf-cpu/model.safetensors`"}


@pytest.mark.parametrize("name", sorted(str(p.relative_to(RECIPES)) for p in RECIPES.rglob("*.json")
                                        if '"init": "s2tf' in p.read_text() or '"generator_init"' in p.read_text()))  # fmt: skip
def test_recipes_warm_start_from_the_weights_they_pin(name):
    """A recipe's `init` names weights by a pin that cannot move: the shipped ones warm-start the recipe's
    model (same keys and shapes outside `reinit`); an older pin is refused, saying where those weights are."""
    from s2tf_cli.errors import WeightsError
    from s2tf_cli.hub import load_model, resolve
    from s2tf_cli.models.s2tf import S2TFModel
    from s2tf_cli.training.trainer import transfer_generator

    cfg = TrainConfig.load(RECIPES / name, {"init": "s2tf-cpu"} if name in INIT_FROM_COMMAND_LINE else None)
    spec = cfg.generator_init or cfg.init
    assert "@sha256:" in spec, f"{name}: init {spec!r} is not pinned"
    pin = spec.partition("@sha256:")[2]
    if pin in HISTORICAL_INITS:
        with pytest.raises(WeightsError, match="now holds other weights"):
            resolve(spec)
        return
    mine = S2TFModel(cfg.model)
    if cfg.generator_init:
        ema = {k: v.clone() for k, v in mine.generator.state_dict().items()}
        assert "blocks.0.conv1.conv.weight" not in transfer_generator(mine.generator, ema, spec)
        return
    theirs = load_model(resolve(spec)).state_dict()
    fresh = tuple(f"{part}." for part in cfg.reinit)
    wrong = [
        k
        for k, v in mine.state_dict().items()
        if not k.startswith(fresh) and (k not in theirs or theirs[k].shape != v.shape)
    ]
    assert not wrong, f"{name}: {wrong[:3]}"


def test_a_recipe_states_only_what_differs_from_its_base(tmp_path):
    (tmp_path / "base.json").write_text('{"model": {"preset": "tiny"}, "steps": {"visual": 3, "sync": 2}, "lr": 0.01}')
    (tmp_path / "exp.json").write_text('{"base": "base.json", "steps": {"sync": 5}, "seed": 4}')
    cfg = TrainConfig.load(tmp_path / "exp.json")
    assert (cfg.steps.visual, cfg.steps.sync, cfg.lr, cfg.seed, cfg.model.preset) == (3, 5, 0.01, 4, "tiny")
    (tmp_path / "loop.json").write_text('{"base": "loop.json"}')
    with pytest.raises(ConfigError, match="leads back to itself"):
        TrainConfig.load(tmp_path / "loop.json")
    (tmp_path / "lost.json").write_text('{"base": "nowhere.json"}')
    with pytest.raises(ConfigError, match="lost.json: 'base' nowhere.json is not a file beside it"):
        TrainConfig.load(tmp_path / "lost.json")


def test_experiment_recipes_state_only_their_differences():
    from s2tf_cli.training.config import read_recipe

    def same(over: dict, base: dict) -> list[str]:
        out = []
        for key, value in over.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict) and key != "model":
                out += [f"{key}.{k}" for k in same(value, base[key])]
            elif base.get(key) == value:
                out.append(key)
        return out

    experiments = sorted((RECIPES / "experiments").glob("*.json"))
    assert len(experiments) > 20
    for path in experiments:
        data = json.loads(path.read_text())
        base = read_recipe((path.parent / data.pop("base")).resolve())
        assert not same(data, base), (path.name, same(data, base))


def _recorded_module(cfg: TrainConfig, corpus: Path):
    """(module, a finetune batch, the f_ir of every G call): the stage's inputs to G, recorded."""
    from s2tf_cli.training.stages import TrainingModule

    torch.manual_seed(0)
    module = TrainingModule(cfg, None).eval()
    batch = _finetune_batch(cfg, corpus, module)
    asked: list[torch.Tensor] = []
    generate = module.model.generate

    def recording(f_id, f_ir, noise=None):
        asked.append(f_ir.detach())
        return generate(f_id, f_ir, noise)

    module.model.generate = recording
    return module, batch, asked


def _finetune_batch(cfg: TrainConfig, corpus: Path, module) -> dict:
    from s2tf_cli.training.corpus import BatchSpec, Corpus, draw_batch

    a = cfg.model.audio
    spec = BatchSpec(batch_size=3, identity_window=int(a.identity_window_s * a.sample_rate),
                     content_window=a.content_window, hop=a.hop_length, context=module.context * a.hop_length,
                     image_size=cfg.model.image_size, audio_augment=False)  # fmt: skip
    return draw_batch(Corpus(corpus, "train"), spec, seed=0, step=0)


def test_mouth_stage_with_pose_entries_draws_frame_k_in_its_pose_and_keeps_speech_off_the_pose(prepared_corpus):
    """`target_pose`: G draws frame k in frame k's pose (E_ir^v's reading), f_s^a adds nothing to the
    pose entries (there, or in `talk`), and `still` compares with the same face drawn at silence."""

    cfg = _config(prepared_corpus)
    cfg.model.pose_center, cfg.model.pose_scale = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    cfg.target_pose, cfg.loss.still, cfg.ir_dropout = True, 1.0, 0.0
    module, batch, asked = _recorded_module(cfg, prepared_corpus)
    torch.manual_seed(1)
    with torch.no_grad():
        loss, metrics, fake = module._finetune(batch, "visual-id")
        f_s = module.content_features(batch["content_audio"])
        f_ir_k = module.model.visual_irrelevant(batch["frame"])
        f_ir_1 = module.model.visual_irrelevant(batch["clip_first"])
        f_sil = module.content_features(torch.zeros_like(batch["content_audio"][:1]))
    assert torch.count_nonzero(f_s[:, :3]) == 0 and torch.count_nonzero(f_s[:, 3:]) > 0
    assert len(asked) == 2 and float(metrics["still"]) > 0
    torch.testing.assert_close(asked[0][:, :3], f_ir_k[:, :3])
    torch.testing.assert_close(asked[0][:, 3:], (f_s + f_ir_1)[:, 3:])
    torch.testing.assert_close(asked[1], asked[0] - f_s + f_sil)  # the silent twin differs by f_s^a alone
    cfg.loss.still = 0.0
    torch.manual_seed(1)
    with torch.no_grad():
        plain, _, _ = module._finetune(batch, "visual-id")
    torch.testing.assert_close(loss - plain, metrics["still"], atol=1e-5, rtol=1e-4)
    # without the flag the pose entries come from the clip's first frame, as before
    cfg.target_pose, asked[:] = False, []
    with torch.no_grad():
        module._finetune(batch, "visual-id")
    torch.testing.assert_close(asked[0], f_s + f_ir_1)


def test_still_counts_only_changes_outside_the_mouth_and_jaw(prepared_corpus):
    from s2tf_cli.training.stages import TrainingModule

    cfg = _config(prepared_corpus)
    module = TrainingModule(cfg, None).eval()
    s = cfg.model.image_size
    quiet = torch.zeros(2, 3, s, s)
    module.model.generate = lambda f_id, f_ir, noise=None: quiet
    audio = torch.zeros(2, 4000)
    args = (torch.zeros(2, cfg.model.id_dim), torch.zeros(2, cfg.model.ir_dim), audio, None, {})
    mouth = quiet.clone()
    mouth[..., int(0.7 * s) : int(0.9 * s), int(0.4 * s) : int(0.6 * s)] = 1.0  # the jaw drops
    assert float(module._still(mouth, *args)) == 0.0
    hair = quiet.clone()
    hair[..., : int(0.2 * s), :] = 0.5  # the hair changes
    metrics = {}
    still = module._still(hair, *args[:-1], metrics)
    outside = s * s - (s - round(0.55 * s)) * (round(0.8 * s) - round(0.2 * s))
    assert float(still) == pytest.approx(0.5 * int(0.2 * s) * s / outside, rel=1e-5)
    assert metrics["still"] == still


def test_mouth_stage_with_a_mouth_entry_lets_the_voice_set_that_entry_alone(prepared_corpus):
    """Weights whose G has a mouth entry: G draws frame k with the first frame's f_ir, frame k's pose and
    the voice's mouth; `speech_mouth` regresses the voice's entry onto E_ir^v's reading of frame k."""

    cfg = _config(prepared_corpus)
    cfg.model.pose_center, cfg.model.pose_scale = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    cfg.model.mouth_center, cfg.model.mouth_scale = 0.1, 0.05
    cfg.target_pose, cfg.loss.speech_mouth, cfg.ir_dropout = True, 2.0, 0.0
    module, batch, asked = _recorded_module(cfg, prepared_corpus)
    torch.manual_seed(1)
    with torch.no_grad():
        loss, metrics, _ = module._finetune(batch, "visual-id")
        f_s = module.content_features(batch["content_audio"])
        f_ir_k = module.model.visual_irrelevant(batch["frame"])
        f_ir_1 = module.model.visual_irrelevant(batch["clip_first"])
    torch.testing.assert_close(asked[0][:, :3], f_ir_k[:, :3])
    torch.testing.assert_close(asked[0][:, 3], f_s[:, 3])
    torch.testing.assert_close(asked[0][:, 4:], f_ir_1[:, 4:])
    want = torch.nn.functional.smooth_l1_loss(f_s[:, 3], f_ir_k[:, 3])
    torch.testing.assert_close(metrics["speech_mouth"], want)
    cfg.loss.speech_mouth = 0.0
    torch.manual_seed(1)
    with torch.no_grad():
        plain, m, _ = module._finetune(batch, "visual-id")
    torch.testing.assert_close(loss - plain, 2.0 * want, atol=1e-5, rtol=1e-4)
    assert "speech_mouth" not in m
