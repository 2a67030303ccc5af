"""Photos without voices for stage 1: `s2tf data photos`, their batches, and a generator-only stage 1
(`frozen`, `extra_faces`) that leaves the encoders, and so the voice side's sync, untouched."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from s2tf_cli.cli import app
from s2tf_cli.config import ConfigError, preset
from s2tf_cli.training.config import TrainConfig
from s2tf_cli.training.corpus import Corpus, draw_photos, join_batches
from s2tf_cli.training.trainer import train

runner = CliRunner()


@pytest.fixture(scope="module")
def photo_corpus(face_folders, tmp_path_factory):
    """The CelebA-like and UTKFace-like folders plus one person whose only photo has no face."""
    blank = tmp_path_factory.mktemp("tmp") / "blank"
    blank.mkdir()
    Image.new("RGB", (120, 120), (128, 128, 128)).save(blank / "40_0_0_20170101000000000.jpg.chip.jpg")
    out = tmp_path_factory.mktemp("photos") / "photos"
    result = runner.invoke(app, ["data", "photos", str(face_folders["celeb"]), str(face_folders["flat"]), str(blank),
                                 str(out), "--size", "32", "-j", "1"])  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_photos_become_one_silent_unlabelled_clip_per_person(photo_corpus):
    rows = [json.loads(line) for line in (photo_corpus / "manifest.jsonl").read_text().splitlines()]
    assert sorted(r["identity"] for r in rows) == ["celeb-id0001", "celeb-id0002", "flat-30_1_2_20170101000000000"]
    assert all(r["split"] == "train" and r["label"] == -1 and r["samples"] == 0 and r["voice"] == "none" for r in rows)
    by_name = {r["identity"]: r for r in rows}
    assert by_name["celeb-id0001"]["frames"] == 2 and by_name["flat-30_1_2_20170101000000000"]["frames"] == 1
    assert by_name["flat-30_1_2_20170101000000000"]["gender"] == "female"
    skipped = (photo_corpus / "skipped.csv").read_text().splitlines()
    assert skipped == ["identity,reason", "blank-40_0_0_20170101000000000,no face"]
    summary = json.loads((photo_corpus / "corpus.json").read_text())
    assert summary["identities"] == 3 and summary["photos"] == 5 and summary["skipped"] == 1
    with np.load(photo_corpus / by_name["celeb-id0002"]["path"], allow_pickle=False) as shard:
        assert len(shard["audio"]) == 0 and int(shard["size"]) == 32
    corpus = Corpus(photo_corpus, "train")
    assert corpus.shard(corpus.clips[0]).frame(1).shape == (32, 32, 3)


def test_photos_leave_out_the_talking_corpus_people(face_folders, raw_corpus, prepared_corpus, tmp_path):
    names = {json.loads(line)["identity"] for line in (prepared_corpus / "manifest.jsonl").read_text().splitlines()}
    assert names >= {"celeb-id0001", "celeb-id0002", "flat-30_1_2_20170101000000000"}
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(next(face_folders["flat"].iterdir()), other / "25_0_1_20170101000000000.jpg.chip.jpg")
    out = tmp_path / "photos"
    args = ["data", "photos", str(face_folders["celeb"]), str(face_folders["flat"])]
    result = runner.invoke(app, [*args, str(out), "--exclude", str(prepared_corpus), "-j", "1"])
    assert result.exit_code == 2 and "no photos of people outside the excluded corpora" in result.output
    assert not out.exists()
    result = runner.invoke(app, [*args, str(other), str(out), "--exclude", str(raw_corpus), "--size", "32", "-j", "1"])
    assert result.exit_code == 0, result.output
    kept = [json.loads(line)["identity"] for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert kept == ["other-25_0_1_20170101000000000"]
    result = runner.invoke(app, ["data", "photos", str(face_folders["celeb"]), str(out), "--exclude",
                                 str(tmp_path / "nowhere")])  # fmt: skip
    assert result.exit_code == 2 and "nowhere: no such folder" in result.output


def test_photo_batches_are_reproducible_unlabelled_and_mirror_the_identity_frame(photo_corpus):
    corpus = Corpus(photo_corpus, "train")
    a = draw_photos(corpus, 3, 32, seed=1, step=4)
    b = draw_photos(corpus, 3, 32, seed=1, step=4)
    assert set(a) == {"first", "frame", "frame_aug", "clip_first", "label"}
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["frame"].shape == (3, 3, 32, 32) and a["label"].tolist() == [-1, -1, -1]
    mirrored = 0
    for step in range(12):
        d = draw_photos(corpus, 3, 32, seed=1, step=step)
        for first in d["first"]:
            frames = [corpus.shard(c).frame(i) for c in corpus.clips for i in range(len(corpus.shard(c)))]
            frames = [torch.from_numpy(f.astype(np.float32) / 127.5 - 1).permute(2, 0, 1) for f in frames]
            assert any(torch.equal(first, f) or torch.equal(first, f.flip(-1)) for f in frames)
            mirrored += not any(torch.equal(first, f) for f in frames)
    assert 0 < mirrored < 36
    joined = join_batches({"frame": a["frame"], "id_audio": torch.zeros(2)}, b)
    assert set(joined) == {"frame"} and len(joined["frame"]) == 6


def _stage1_config(prepared_corpus, photo_corpus) -> TrainConfig:
    cfg = TrainConfig(corpus=str(prepared_corpus), model=preset("tiny"), batch_size=4, log_every=1, sample_every=0)
    cfg.steps.visual, cfg.steps.sync, cfg.steps.finetune = 2, 0, 0
    cfg.extra_faces, cfg.extra_face_share = str(photo_corpus), 0.5
    cfg.frozen = ["visual_identity", "visual_irrelevant", "centroids"]
    return cfg


def test_generator_only_stage_one_on_photos(prepared_corpus, photo_corpus, tmp_path, monkeypatch):
    import s2tf_cli.training.trainer as trainer

    calls = []
    real = trainer.draw_photos

    def spy(photos, n, *args, **kwargs):
        calls.append(n)
        return real(photos, n, *args, **kwargs)

    monkeypatch.setattr(trainer, "draw_photos", spy)
    first = TrainConfig(corpus=str(prepared_corpus), model=preset("tiny"), batch_size=4, sample_every=0)
    first.steps.visual, first.steps.sync, first.steps.finetune = 1, 0, 0
    train(first, tmp_path / "start", cpu=True)
    from s2tf_cli.training.export import export

    start = load_file(str(export(tmp_path / "start", tmp_path / "w0") / "model.safetensors"))
    cfg = _stage1_config(prepared_corpus, photo_corpus)
    cfg.init = str(tmp_path / "w0")
    calls.clear()
    train(cfg, tmp_path / "run", cpu=True)
    assert calls == [2, 2]  # half of every stage-1 batch of 4
    after = load_file(str(tmp_path / "run" / "checkpoints" / "ckpt-0000002" / "module.safetensors"))
    for part in cfg.frozen:  # weights and batch-norm statistics alike
        keys = [k for k in start if k.startswith(part + ".")]
        assert keys and all(torch.equal(start[k], after["model." + k]) for k in keys), part
    gen = [k for k in start if k.startswith("generator.") and start[k].dtype.is_floating_point]
    assert not all(torch.equal(start[k], after["model." + k]) for k in gen)
    from s2tf_cli.training.card import run_details

    card = run_details(tmp_path / "run")
    assert "- frozen in every stage: visual_identity, visual_irrelevant, centroids" in card
    photos_part = card[card.index("Stage 1 also drew 50% of each batch from the voiceless photo corpus") :]
    assert "| celeb | train | 2 | 2 |" in photos_part and "| flat | train | 1 | 1 |" in photos_part


def test_photo_options_are_checked(prepared_corpus, photo_corpus, tmp_path):
    with pytest.raises(ConfigError, match="unknown model part.*voice"):
        TrainConfig.from_dict({"model": {"preset": "tiny"}, "frozen": ["voice"]})
    with pytest.raises(ConfigError, match="'extra_face_share' must be in"):
        TrainConfig.from_dict({"model": {"preset": "tiny"}, "extra_face_share": 1.0})
    cfg = _stage1_config(prepared_corpus, photo_corpus)
    cfg.extra_faces = ""
    with pytest.raises(ValueError, match="needs 'extra_faces'"):
        train(cfg, tmp_path / "run", cpu=True)
    recipe = tmp_path / "recipe.json"
    cfg.save(recipe)
    result = runner.invoke(app, ["train", str(recipe), "--out", str(tmp_path / "cli"), "--extra-faces",
                                 str(tmp_path / "none"), "--cpu"])  # fmt: skip
    assert result.exit_code == 2 and "none: not a photo corpus (run `s2tf data photos`)" in result.output
    assert not (tmp_path / "cli").exists()


def test_discriminator_warmup_trains_the_discriminator_alone(prepared_corpus, photo_corpus, tmp_path):
    cfg = _stage1_config(prepared_corpus, photo_corpus)
    cfg.frozen, cfg.discriminator_warmup, cfg.checkpoint_every, cfg.keep_checkpoints = [], 2, 1, 5
    cfg.steps.visual = 3
    train(cfg, tmp_path / "run", cpu=True)
    ckpt = [
        load_file(str(tmp_path / "run" / "checkpoints" / f"ckpt-000000{i}" / "module.safetensors")) for i in (1, 2, 3)
    ]
    ema = [load_file(str(tmp_path / "run" / "checkpoints" / f"ckpt-000000{i}" / "ema.safetensors")) for i in (1, 2, 3)]

    def same(a, b, prefix):
        keys = [k for k in a if k.startswith(prefix) and a[k].dtype.is_floating_point]
        assert keys, prefix
        return all(torch.equal(a[k], b[k]) for k in keys)

    for part in ("model.generator.", "model.visual_identity.", "model.visual_irrelevant.", "model.centroids."):
        assert same(ckpt[0], ckpt[1], part), part  # steps 1 and 2: the warm-up
    assert same(ema[0], ema[1], "")
    assert not same(ckpt[0], ckpt[1], "discriminator.")
    assert not same(ckpt[1], ckpt[2], "model.generator.") and not same(ema[1], ema[2], "")
    metrics = (tmp_path / "run" / "metrics-visual.csv").read_text().splitlines()
    assert len(metrics) == 4 and all(float(row.split(",")[-1]) > 0 for row in metrics[1:])  # loss_d logged
    from s2tf_cli.training.card import run_details

    assert "- the first 2 steps trained the (fresh) discriminator alone" in run_details(tmp_path / "run")
    with pytest.raises(ConfigError, match="'discriminator_warmup' must be >= 0"):
        TrainConfig.from_dict({"model": {"preset": "tiny"}, "discriminator_warmup": -1})
