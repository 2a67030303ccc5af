"""Training on real people: the face set and voice set builders, the GAN stage on photos (`steps.faces`)
and the voice stage (`steps.voices`), on tiny trees in the s2f, RAVDESS, CelebA and LibriSpeech layouts."""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import TRAIN_PERSON, VAL_PERSON, faces_config, ge2e_model_config, holdout_name, speechlike
from safetensors.torch import load_file
from typer.testing import CliRunner

from s2tf_cli.cli import app
from s2tf_cli.config import ConfigError, DiscriminatorConfig, preset
from s2tf_cli.evaluation.syncnet import SyncNet, SyncNetConfig
from s2tf_cli.training.config import TrainConfig

runner = CliRunner()


def test_faceset_holds_every_face_with_labels_and_the_validation_split(faceset, s2f_tree):
    images = np.load(faceset / "faces.npy")
    with open(faceset / "faces.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert images.shape == (len(rows), 32, 32, 3) and images.dtype == np.uint8
    assert images.reshape(len(rows), -1).std(1).min() > 5  # real crops, not blank rows
    people = {r["person"]: r for r in rows}
    # s2f: 2 + 2 + 1 photos (face.jpg is a copy and is skipped), RAVDESS 1, CelebA 4, UTKFace 1
    assert len(rows) == 11
    assert people[f"s2f-{TRAIN_PERSON}"]["gender"] == "male" and people[f"s2f-{VAL_PERSON}"]["gender"] == "female"
    assert people["s2f-yt_abc"]["gender"] == "unknown"
    assert {r["split"] for r in rows if r["person"] == f"s2f-{VAL_PERSON}"} == {"val"}
    assert all(r["split"] == "train" for r in rows if r["person"] != f"s2f-{VAL_PERSON}" and r["source"] != "ravdess")
    assert people["flat-30_1_2_20170101000000000"]["age"] == "30"
    summary = json.loads((faceset / "faceset.json").read_text())
    assert summary["photos"] == 11 and summary["skipped"] == 0 and summary["val_people"] >= 1


def test_face_batches_never_draw_validation_people_and_pair_photos_of_one_person(faceset):
    from s2tf_cli.training.face_batches import FaceSet

    faces = FaceSet(faceset, 16)
    assert f"s2f-{VAL_PERSON}" not in {r.person for r in faces.rows}
    assert faces.images.shape[1:] == (16, 16, 3)
    # real-voice people first in the labels, so a voice stage can share their centroids
    assert faces.labels_by_person[f"s2f-{TRAIN_PERSON}"] == 0
    assert faces.labels_by_person["celeb-id0001"] >= 2
    assert "flat-30_1_2_20170101000000000" not in faces.labels_by_person  # one photo, no voice: no label
    batch = faces.draw(6, np.random.default_rng(0), real_share=0.5)
    assert batch["frame"].shape == (6, 3, 16, 16) and batch["first"].shape == (6, 3, 16, 16)
    assert batch["frame"].min() >= -1 and batch["frame"].max() <= 1
    assert (batch["label"][:3] >= 0).all()  # the real-voice half: s2f and RAVDESS people all have labels
    with pytest.raises(FileNotFoundError, match="not a face set"):
        FaceSet(faceset.parent, 16)


def test_data_faces_refuses_a_missing_folder(tmp_path):
    result = runner.invoke(app, ["data", "faces", str(tmp_path / "nope"), str(tmp_path / "out")])
    assert result.exit_code == 2 and "no such folder" in result.output


def test_diff_augment_keeps_gradients_and_moves_pixels_as_stated():
    from s2tf_cli.training.diffaugment import cutout, diff_augment, translation

    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    y = diff_augment(x, ["color", "translation", "cutout"])
    y.sum().backward()
    assert y.shape == x.shape and x.grad.abs().sum() > 0
    torch.manual_seed(0)
    ramp = torch.arange(16.0).view(1, 1, 1, 16).expand(64, 3, 16, 16).contiguous()
    moved = translation(ramp)
    shift = moved[:, 0, 8, 8] - ramp[:, 0, 8, 8]  # a translated ramp keeps its slope, offset by the shift
    assert shift.abs().max() <= 2 and shift.abs().max() > 0
    holes = (cutout(torch.ones(200, 3, 16, 16)) == 0).float().mean().item()
    assert 0.15 < holes < 0.3  # a half-side square: a quarter of the image, less where it leaves the edge
    with pytest.raises(ValueError, match="unknown augmentation"):
        diff_augment(x, ["zoom"])


def test_residual_discriminator_shape_and_config_checks():
    from s2tf_cli.models.discriminator import ResidualDiscriminator, make_discriminator

    d = make_discriminator(DiscriminatorConfig(channels=[8, 16], kind="residual"), 32)
    assert isinstance(d, ResidualDiscriminator)
    assert d(torch.randn(6, 3, 32, 32))[0][-1].shape == (6, 1)
    with pytest.raises(ConfigError, match="discriminator.kind"):
        DiscriminatorConfig(kind="stylegan")
    with pytest.raises(ValueError, match="not divisible"):
        ResidualDiscriminator(DiscriminatorConfig(channels=[8, 16, 32], kind="residual"), 20)


def test_stage_runs_of_their_own_refuse_other_stages():
    with pytest.raises(ConfigError, match="run of its own"):
        TrainConfig.from_dict({"model": {"preset": "tiny"}, "steps": {"faces": 5}})
    with pytest.raises(ConfigError, match="run of its own"):
        TrainConfig.from_dict({"model": {"preset": "tiny"},
                               "steps": {"faces": 5, "voices": 5, "visual": 0, "sync": 0, "finetune": 0}})  # fmt: skip


@pytest.fixture(scope="module")
def faces_run(faceset, ge2e_file, tmp_path_factory) -> Path:
    from s2tf_cli.training.trainer import train

    out = tmp_path_factory.mktemp("runs") / "faces"
    summary = train(faces_config(faceset, ge2e_file), out, max_steps=2, cpu=True)
    assert summary["steps"] == 2
    summary = train(faces_config(faceset, ge2e_file), out, cpu=True)  # resumes at step 2
    assert summary["steps"] == 4
    return out


def test_faces_stage_trains_resumes_logs_and_exports(faces_run, ge2e_file, tmp_path):
    from s2tf_cli.hub import load_model, resolve
    from s2tf_cli.training.export import export

    with open(faces_run / "metrics-faces.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]  # the resumed run appends, nothing repeated
    assert all(np.isfinite(float(r["loss_g"])) and np.isfinite(float(r["loss_d"])) for r in rows)
    assert np.isfinite(float(rows[0]["r1"])) and np.isnan(float(rows[1]["r1"]))  # lazy R1: steps 0, 2, ...
    assert np.isnan(float(rows[0]["id_cos"])) and np.isfinite(float(rows[1]["id_cos"]))  # identity from step 1
    assert sorted(p.name for p in (faces_run / "samples").iterdir()) == ["step-0000002.png", "step-0000004.png"]
    labels = json.loads((faces_run / "labels.json").read_text())
    assert labels[f"s2f-{TRAIN_PERSON}"] == 0 and f"s2f-{VAL_PERSON}" not in labels
    folder = export(faces_run, tmp_path / "exp")
    model = load_model(resolve(str(folder)))
    assert model.cfg.trained_steps == 4 and model.cfg.discriminator.kind == "residual"
    silence = torch.randn(3, model.cfg.audio.n_mels, model.cfg.audio.content_window)
    assert torch.count_nonzero(model.eval().audio_content(silence)) == 0  # no content stage yet: no mouth motion
    backbone = load_file(str(ge2e_file))  # the GE2E backbone is carried into the export
    for key, value in backbone.items():
        assert torch.equal(model.audio_identity.backbone.state_dict()[key], value)


@pytest.fixture(scope="module")
def voiceset(tmp_path_factory, s2f_tree, libri_tree, face_folders, ge2e_file) -> Path:
    out = tmp_path_factory.mktemp("voiceset") / "voices"
    from s2tf_cli.data.voiceset import build_voiceset
    from s2tf_cli.models.s2tf import S2TFModel
    from s2tf_cli.training.trainer import load_speaker_backbone

    model = S2TFModel(ge2e_model_config()).eval()
    load_speaker_backbone(model, str(ge2e_file))
    build_voiceset([s2f_tree, face_folders["real"], libri_tree], out, model, augmented=1)
    return out


def test_voiceset_holds_unit_dvectors_linked_to_their_photos(voiceset, s2f_tree, ge2e_file):
    vectors = np.load(voiceset / "dvectors.npy")
    with open(voiceset / "windows.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert vectors.shape == (len(rows), 8)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    clips = {(r["clip"], r["variant"]) for r in rows}
    assert len({c for c, _ in clips}) == 5 + 2 + 2  # s2f 5 clips, RAVDESS 2 utterances, LibriSpeech 2
    assert {v for _, v in clips} == {"0", "1"}
    s2f_rows = [r for r in rows if r["source"] == "s2f"]
    assert all(r["photo"].endswith(".jpg") and Path(r["photo"]).is_file() for r in s2f_rows)
    assert {r["split"] for r in rows if r["person"] == f"s2f-{VAL_PERSON}"} == {"val"}
    libri = {r["person"]: r["gender"] for r in rows if r["source"] == "librispeech"}
    assert libri == {"librispeech-0": "male", "librispeech-1": "female"} and not any(
        r["photo"] for r in rows if r["source"] == "librispeech"
    )
    assert json.loads((voiceset / "voiceset.json").read_text())["augmented"] == 1
    # the GE2E weights that made the d-vectors are kept beside them
    assert load_file(str(voiceset / "ge2e.safetensors")).keys() == load_file(str(ge2e_file)).keys()


def test_voice_stage_trains_only_the_head_and_exports(faces_run, faceset, voiceset, ge2e_file, tmp_path):
    from s2tf_cli.hub import load_model, resolve
    from s2tf_cli.training.export import export
    from s2tf_cli.training.trainer import train

    init = export(faces_run, tmp_path / "faces-exp")
    cfg = faces_config(faceset, ge2e_file)
    cfg.steps.faces, cfg.steps.voices = 0, 6
    cfg.init, cfg.voiceset, cfg.audio_identity_init = str(init), str(voiceset), ""  # GE2E from the voice set
    cfg.sample_every, cfg.checkpoint_every, cfg.log_every = 3, 3, 3
    summary = train(cfg, tmp_path / "voices", cpu=True)
    assert summary["steps"] == 6 and "val_median_rank" in summary
    with open(tmp_path / "voices" / "metrics-voices.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [3, 6]
    assert all(np.isfinite(float(rows[-1][k])) for k in ("id_sync", "gender", "val_median_rank"))
    after = load_model(resolve(str(export(tmp_path / "voices", tmp_path / "voices-exp"))))
    before = load_model(resolve(str(init)))
    changed = {k for k, v in after.state_dict().items() if not torch.equal(v, before.state_dict()[k])}
    assert changed and all(k.startswith("audio_identity.head.") for k in changed)
    assert after.cfg.trained_steps == before.cfg.trained_steps + 6


def test_voice_stage_dev_people_are_training_people_held_out_of_its_training(faces_run, faceset, voiceset,
                                                                             ge2e_file, tmp_path):  # fmt: skip
    from s2tf_cli.training.export import export
    from s2tf_cli.training.face_batches import FaceSet
    from s2tf_cli.training.trainer import train
    from s2tf_cli.training.voice_stage import VoiceSet, dev_people

    voices, faces = VoiceSet(voiceset, "train"), FaceSet(faceset, 32)
    dev = dev_people(voices, faces, 1, seed=0)
    assert dev == dev_people(voices, faces, 1, seed=0) and len(dev) == 1
    assert set(dev) <= {r.person for r in faces.rows} and not set(dev) & set(VoiceSet(voiceset, "val").person)
    n = len(voices)
    held = voices.split_off(set(dev))
    assert set(held.person) == set(dev) and not set(dev) & set(voices.person)
    assert len(held) + len(voices) == n and len(held.dvectors) == len(held) and len(voices.dvectors) == len(voices)
    with pytest.raises(ValueError, match="voice_dev_people 2: only 2 training people have a photo"):
        dev_people(VoiceSet(voiceset, "train"), faces, 2, seed=0)  # none would be left to train on

    cfg = faces_config(faceset, ge2e_file)
    cfg.steps.faces, cfg.steps.voices, cfg.voice_dev_people, cfg.voice_shift = 0, 3, 1, True
    cfg.init, cfg.voiceset, cfg.audio_identity_init = str(export(faces_run, tmp_path / "exp")), str(voiceset), ""
    cfg.sample_every = cfg.checkpoint_every = cfg.log_every = 3
    summary = train(cfg, tmp_path / "voices", cpu=True)
    assert summary["val_people"] == 1 and summary["scored_on"].startswith("dev")
    # the stage measured where its voices lie against their photos; the export and later stages keep it
    from s2tf_cli.pipeline import S2TF
    from s2tf_cli.training.config import TrainConfig
    from s2tf_cli.training.trainer import inherit_pose

    exported = export(tmp_path / "voices", tmp_path / "voices-exp")
    s2tf = S2TF.from_pretrained(str(exported), device="cpu")
    shift = torch.tensor(s2tf.cfg.voice_shift)
    assert shift.shape == (s2tf.cfg.id_dim,) and torch.isfinite(shift).all() and shift.abs().max() > 0
    later = TrainConfig(model=faces_config(faceset, ge2e_file).model, init=str(exported))
    inherit_pose(later)
    assert later.model.voice_shift == s2tf.cfg.voice_shift
    f = torch.randn(s2tf.cfg.id_dim)
    moved = torch.nn.functional.normalize(torch.nn.functional.normalize(f, dim=-1) + shift, dim=-1)
    torch.testing.assert_close(s2tf.drawable_identity(f), moved)  # what G draws; retrieval keeps f_id^a


def test_voice_shift_weighs_each_person_once_and_skips_augmented_or_photoless_windows():
    from types import SimpleNamespace

    from s2tf_cli.training.voice_stage import voice_shift

    a = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0, 0, 2.0], [0, 3.0, 0]])
    voices = SimpleNamespace(dvectors=a, person=["p", "p", "q", "q", "r"], variant=np.array([0, 0, 0, 1, 0]))
    f_photo = torch.tensor([[0.0, 0, 1], [1.0, 0, 0]])
    targets = SimpleNamespace(photo_row=torch.tensor([0, 0, 1, 1, -1]), f_photo=f_photo)
    head = SimpleNamespace(model=SimpleNamespace(audio_identity=SimpleNamespace(head=torch.nn.Identity())))
    # p: voices (1,0,0) and (0,1,0) -> mean (.5,.5,0), photo (0,0,1); q: voice (0,0,1), photo (1,0,0);
    # q's augmented window and r (no photo) are left out
    want = np.array([0.5, 0, 0.5]) - np.array([0.25, 0.25, 0.5])
    assert voice_shift(head, voices, targets) == pytest.approx(want.tolist(), abs=1e-5)
    assert voice_shift(head, voices, SimpleNamespace(photo_row=torch.full((5,), -1), f_photo=f_photo)) == []


def test_cli_train_faces_recipe_needs_a_faceset(tmp_path):
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"model": {"preset": "tiny"},
                                  "steps": {"faces": 2, "visual": 0, "sync": 0, "finetune": 0}}))  # fmt: skip
    result = runner.invoke(app, ["train", str(recipe), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "not a face set" in result.output


def test_samples_move_toward_the_nearest_real_people_deterministically(voices):
    import torch.nn.functional as F

    from s2tf_cli.models.s2tf import S2TFModel
    from s2tf_cli.pipeline import S2TF

    torch.manual_seed(1)
    model = S2TFModel(dataclasses.replace(preset("tiny"), sample_neighbours=2))
    s2tf = S2TF(model, torch.device("cpu"))
    f_id = s2tf.voice_identity(voices["low"])
    with torch.no_grad():
        near = s2tf.model.centroids.cosine(f_id[None])[0].topk(2).indices
        centroids = F.normalize(s2tf.model.centroids.weight, dim=-1)
    moved = [s2tf._sample_identity(f_id, seed) for seed in range(6)]
    assert torch.equal(moved[0], s2tf._sample_identity(f_id, 0))  # the same seed, the same person
    for m in moved:
        toward = (m @ centroids[near].T).max()
        assert toward > (f_id @ centroids[near].T).max() - 1e-6  # closer to one of the two nearest people
        assert torch.isclose(m.norm(), torch.tensor(1.0))
    assert len({tuple(m.round(decimals=4).tolist()) for m in moved}) > 1
    faces = s2tf.face(voices["low"], n_samples=3, seed=5)
    assert len(faces) == 3 and not np.array_equal(faces[0], faces[1])
    again = s2tf.face(voices["low"], n_samples=3, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(faces, again))


def test_identity_run_then_a_gan_stage_on_its_frozen_encoder(faceset, ge2e_file, tmp_path):
    from s2tf_cli.hub import load_model, resolve
    from s2tf_cli.training.export import export
    from s2tf_cli.training.trainer import train

    cfg = faces_config(faceset, ge2e_file)
    cfg.steps.faces, cfg.steps.identity = 0, 3
    cfg.checkpoint_every = 3
    assert train(cfg, tmp_path / "id", cpu=True)["steps"] == 3
    with open(tmp_path / "id" / "metrics-identity.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [1, 2, 3] and np.isfinite(float(rows[-1]["arcface"]))
    assert not (tmp_path / "id" / "samples").exists()  # no generator in an identity run
    encoder = export(tmp_path / "id", tmp_path / "id-exp")
    before = load_model(resolve(str(encoder)))
    fresh = S2TFModel_state(cfg)
    assert any(not torch.equal(v, fresh[k]) for k, v in before.state_dict().items() if k.startswith("visual_identity."))
    assert all(torch.equal(v, fresh[k]) for k, v in before.state_dict().items() if k.startswith("generator."))

    cfg.steps.identity, cfg.steps.faces = 0, 2
    cfg.init, cfg.frozen = str(encoder), ["visual_identity", "centroids"]
    train(cfg, tmp_path / "gan", cpu=True)
    after = load_model(resolve(str(export(tmp_path / "gan", tmp_path / "gan-exp"))))
    for key, value in before.state_dict().items():
        if key.startswith(("visual_identity.", "centroids.")):
            assert torch.equal(after.state_dict()[key], value), key  # frozen, batch-norm statistics too
    assert any(
        not torch.equal(after.state_dict()[k], v) for k, v in before.state_dict().items() if k.startswith("generator.")
    )


def S2TFModel_state(cfg: TrainConfig) -> dict:
    """The state a fresh model of the recipe starts from (same seed as the runs)."""
    from s2tf_cli.training.face_prior import FacePriorModule

    torch.manual_seed(cfg.seed)
    return FacePriorModule(cfg).model.state_dict()


@pytest.fixture(scope="module")
def validation_tree(tmp_path_factory, face_folders) -> dict[str, Path]:
    """Three held-out s2f people (two clips for one), a held-out RAVDESS actor, and a talking clip."""
    import imageio_ffmpeg
    from PIL import Image

    root = tmp_path_factory.mktemp("val")
    s2f = root / "s2f"
    photos = sorted(face_folders["celeb"].glob("*/*.jpg"))
    names = [holdout_name("s2f", True, f"V{k}_") for k in range(3)]
    for k, name in enumerate(names):
        folder = s2f / "voxceleb" / name
        folder.mkdir(parents=True)
        for c in range(2 if k == 0 else 1):
            shutil.copy(photos[(k + c) % len(photos)], folder / f"{name}_{c}.jpg")
            sf.write(folder / f"{name}_{c}.ogg", speechlike(3.3, f0=100 + 60 * k, seed=70 + k + c), 16000)
    (s2f / "avspeech").mkdir()
    (s2f / "people.csv").write_text("person,gender,nationality,source\n" + "".join(
        f"{n},{'mf'[k % 2]},,voxceleb1\n" for k, n in enumerate(names)))  # fmt: skip
    talking = root / "talking"
    talking.mkdir()
    wav = root / "talk.wav"
    sf.write(wav, speechlike(1.2, f0=130, seed=9), 16000)
    base = np.asarray(Image.open(photos[0]).convert("RGB").resize((128, 128)))
    writer = imageio_ffmpeg.write_frames(str(talking / "clip.mp4"), (128, 128), fps=25, macro_block_size=2,
                                         audio_path=str(wav), audio_codec="aac", ffmpeg_log_level="error")  # fmt: skip
    writer.send(None)
    for k in range(30):
        writer.send(np.ascontiguousarray(np.roll(base, k % 6, axis=1)))
    writer.close()
    return {"s2f": s2f, "ravdess": face_folders["real"], "talking": talking}


@pytest.mark.slow
def test_eval_people_scores_the_validation_people_with_every_figure(validation_tree, tiny_weights, tmp_path):
    from s2tf_cli.evaluation.real_people import validation_people

    people = validation_people(validation_tree["s2f"], validation_tree["ravdess"])
    assert len(people) == 4 and {p.source for p in people} == {"s2f", "ravdess"}  # Actor_01 is held out
    out, grid = tmp_path / "people.json", tmp_path / "people.png"
    expert = SyncNet(SyncNetConfig(width=4, dim=8)).save(tmp_path / "expert")
    result = runner.invoke(app, ["eval-people", "--s2f", str(validation_tree["s2f"]), "--ravdess",
                                 str(validation_tree["ravdess"]), "--talking", str(validation_tree["talking"]),
                                 "-w", str(tiny_weights), "-w", str(tiny_weights), "--json", str(out),
                                 "--grid", str(grid), "--device", "cpu", "--syncnet", str(expert)])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())
    first = next(v for k, v in rows.items() if not k.startswith("Δ"))
    assert first["people"] == 4 and first["clips"] == 4 + 2  # 4 s2f clips, 2 RAVDESS utterances
    assert first["gallery"] == 4 and len(first["ranks"]) == first["clips"] and first["R@10 chance %"] == 100.0
    assert 0 <= first["gender balanced %"] <= 100 and first["male clips"] + first["female clips"] == first["clips"]
    assert np.isfinite(first["KID"]) and first["variety photos"] > 0 and "sample spread" in first
    assert first["talk clips"] == 1 and "talk mouth corr reversed" in first and "talk still mouth corr" in first
    assert np.isfinite(first["talk flicker"]) and first["talk flicker"] >= 0
    # head motion of `talk` (its first frame as the still pose) beside the real clip's own, in one table
    real = rows["real talking clips (1)"]
    assert 0.99 < real["head identity first-last"] <= 1.0  # the clip's frames are one photo shifted
    assert 0.99 < real["head identity least"] <= real["head identity first-last"] + 1e-9
    assert real["head yaw spread"] < 0.1 and real["head yaw spread range"] == [real["head yaw spread"]] * 2
    assert set(first["head per clip"]) == {"clip.mp4"} and -1 <= first["head identity first-last"] <= 1
    assert "real talking clips (1)" in result.output and "blinks /min" in result.output
    # the sync expert on the model's still-pose frames and, as its own check, on the real frames
    for row in (first, real):
        assert set(row["talk sync offsets"]) == {"clip.mp4"} and -10 <= row["talk sync offsets"]["clip.mp4"] <= 10
        assert row["talk sync offset 0 %"] in (0.0, 100.0) and row["talk sync conf"] >= 0
        assert row["talk sync conf rolled"] >= 0
    assert "talk sync conf rolled" in result.output
    delta = next(v for k, v in rows.items() if k.startswith("Δ"))
    assert delta["gender correct %"] == 0 and delta["mean rank"] == 0  # the same weights twice: no difference
    from PIL import Image

    assert Image.open(grid).size[0] > Image.open(grid).size[1]  # 4 people across, photo row over 2 model rows


def test_variety_counts_only_pairs_of_different_people():
    from s2tf_cli.evaluation.real_people import mean_pairwise_distance

    v = np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0]])  # two faces of one person, one of another
    assert mean_pairwise_distance(v) == pytest.approx(10 / 3)  # every pair: 0, 5, 5
    assert mean_pairwise_distance(v, np.array([0, 0, 1])) == pytest.approx(5.0)  # only the pairs across people
    assert np.isnan(mean_pairwise_distance(v, np.array([1, 1, 1])))


def test_eval_people_checks_the_sync_expert_before_scoring(validation_tree, tmp_path):
    args = ["eval-people", "--s2f", str(validation_tree["s2f"]), "--syncnet", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "give --talking too" in result.output
    result = runner.invoke(app, [*args, "--talking", str(validation_tree["talking"])])
    assert result.exit_code == 2 and f"{tmp_path}: not a sync expert folder" in result.output


def test_head_pose_reads_yaw_pitch_and_roll_off_landmarks():
    from s2tf_cli.evaluation.real_people import head_pose

    pts = np.zeros((68, 2))
    pts[36:42] = [40, 50]  # left eye centre
    pts[42:48] = [60, 50]  # right eye centre
    pts[30] = [50, 60]  # nose tip straight below the eyes' midpoint
    yaw, pitch, roll = head_pose(pts)
    assert abs(yaw) < 1e-6 and pitch == pytest.approx(0.5) and abs(roll) < 1e-6
    pts[30] = [55, 60]  # nose turned a quarter eye-distance to the side
    assert head_pose(pts)[0] == pytest.approx(0.25)
    c, s = np.cos(0.3), np.sin(0.3)
    rotated = (pts - 50) @ np.array([[c, s], [-s, c]]) + 50  # the whole face tilted by 0.3 rad
    yaw_r, pitch_r, roll_r = head_pose(rotated)
    assert roll_r == pytest.approx(0.3) and yaw_r == pytest.approx(0.25) and pitch_r == pytest.approx(0.5)


def test_generator_transfer_takes_every_matching_synthesis_layer_and_starts_the_rest_fresh(tiny_weights):
    from s2tf_cli.config import GeneratorConfig
    from s2tf_cli.hub import load_model, resolve
    from s2tf_cli.models.generator import StyleGenerator
    from s2tf_cli.training.trainer import transfer_generator

    source = load_model(resolve(str(tiny_weights))).generator.state_dict()  # 32 px, blocks 4..32, const input
    torch.manual_seed(3)
    small = StyleGenerator(GeneratorConfig(channels=[16, 16, 8], style_dim=16, mapping_layers=2, input="style"),
                           in_dim=5, image_size=16)  # fmt: skip
    ema = {k: torch.zeros_like(v) for k, v in small.state_dict().items()}
    fresh = transfer_generator(small, ema, str(tiny_weights))
    assert fresh == ["input.bias", "input.weight", "mapping.net.0.bias", "mapping.net.0.weight"]
    mine = small.state_dict()
    for key, value in mine.items():
        if key not in fresh:
            assert torch.equal(value, source[key]), key  # const, blocks 0-2 (4..16 px), to_rgb, mapping.net.1
        assert torch.equal(ema[key], value), key
    assert not any(torch.count_nonzero(mine[k]) for k in ("input.weight", "input.bias"))  # starts as const input
    other = StyleGenerator(GeneratorConfig(channels=[12, 12], style_dim=16, mapping_layers=2), in_dim=5, image_size=8)
    with pytest.raises(ValueError, match="shares no synthesis block"):
        transfer_generator(other, {k: v.clone() for k, v in other.state_dict().items()}, str(tiny_weights))


def test_a_resumed_faces_run_takes_the_recipes_learning_rates(faceset, ge2e_file, tmp_path):
    """A GAN run may go on calmer than it began: on resume the recipe's lr replaces the checkpoint's."""
    from s2tf_cli.training.trainer import train

    cfg = faces_config(faceset, ge2e_file)
    train(cfg, tmp_path / "run", max_steps=2, cpu=True)
    cfg.lr, cfg.encoder_lr = 5e-4, 1e-4
    train(cfg, tmp_path / "run", max_steps=4, cpu=True)
    meta = json.loads((tmp_path / "run" / "checkpoints" / "ckpt-0000004" / "state.json").read_text())
    assert [g["lr"] for g in meta["optimizers"]["g"]["param_groups"]] == [5e-4, 5e-4 * cfg.faces.mapping_lr, 1e-4]
    assert [g["lr"] for g in meta["optimizers"]["d"]["param_groups"]] == [5e-4]


def test_speech_flicker_is_change_outside_the_speech_region_over_change_in_the_mouth():
    from s2tf_cli.evaluation.real_people import speech_flicker

    s = 40
    frames = np.zeros((3, s, s, 3), np.uint8)
    frames[1, 27:33, 14:26] = 200  # the mouth opens and closes
    assert speech_flicker(frames) == 0.0
    frames[1, :4] = 100  # ... and the hair brightens with it
    mouth = 200 * 6 * 12 / (10 * 16)  # mean change in the mouth box (rows 24-33, cols 12-27)
    outside = 100 * 4 * s / (s * s - 18 * 24)
    assert speech_flicker(frames) == pytest.approx(outside / mouth, rel=1e-5)
    assert np.isnan(speech_flicker(frames[:1]))


def test_the_anchor_holds_drawn_faces_to_a_frozen_teachers_at_low_resolution(faceset, ge2e_file, tmp_path):
    from s2tf_cli.hub import save_folder
    from s2tf_cli.models.s2tf import S2TFModel
    from s2tf_cli.training.face_batches import FaceSet
    from s2tf_cli.training.face_prior import FacePriorModule

    cfg = faces_config(faceset, ge2e_file)
    cfg.faces.anchor = 1.0
    with pytest.raises(ValueError, match="needs anchor_init"):
        FacePriorModule(cfg)
    cfg.anchor_init = "set below"
    torch.manual_seed(0)
    module = FacePriorModule(cfg)
    module.anchor_to(str(save_folder(module.model, tmp_path / "same", "G itself")))
    module.set_training()
    plain = FacePriorModule(dataclasses.replace(cfg, faces=dataclasses.replace(cfg.faces, anchor=0.0)))
    assert module.state_dict().keys() == plain.state_dict().keys()  # the teacher stays out of checkpoints
    batch = FaceSet(faceset, cfg.model.image_size).draw(4, np.random.default_rng(0))
    _, metrics, _ = module(batch, "g", 0)
    assert float(metrics["anchor"]) < 1e-5  # the teacher is G itself
    torch.manual_seed(1)
    module.anchor_to(str(save_folder(S2TFModel(cfg.model), tmp_path / "other", "another G")))
    loss, metrics, _ = module(batch, "g", 0)
    assert float(metrics["anchor"]) > 1e-3
    loss.backward()
    assert all(p.grad is None for p in module._anchor[0].parameters()), "the teacher is frozen"
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.model.generator.parameters())
    with pytest.raises(ValueError, match="anchor_mouth needs faces.mouth"):
        FacePriorModule(dataclasses.replace(cfg, faces=dataclasses.replace(cfg.faces, anchor_mouth=1.0)))
    module.zero_grad()
    f_id, f_ir = torch.randn(6, cfg.model.id_dim), torch.randn(6, cfg.model.ir_dim)
    got = module._mouth_anchor(f_id, f_ir, metrics)
    assert got.item() > 1e-3 and float(metrics["anchor_mouth"]) == got.item()
    got.backward()
    assert all(p.grad is None for p in module._anchor[0].parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.model.generator.parameters())
    module.anchor_to(str(tmp_path / "same"))
    assert module._mouth_anchor(f_id, f_ir, metrics) < 1e-5  # G itself: the same mouths
    wider = dataclasses.replace(cfg.model.generator, channels=[c * 2 for c in cfg.model.generator.channels])
    misfit = save_folder(S2TFModel(dataclasses.replace(cfg.model, generator=wider)), tmp_path / "wide", "wider G")
    with pytest.raises(ValueError, match=r"wide: its generator differs from the recipe's \(\d+ keys"):
        module.anchor_to(str(misfit))


def test_an_anchored_faces_run_logs_the_anchor_and_resumes(faceset, ge2e_file, tmp_path):
    from s2tf_cli.hub import save_folder
    from s2tf_cli.models.s2tf import S2TFModel
    from s2tf_cli.training.trainer import train

    cfg = faces_config(faceset, ge2e_file)
    torch.manual_seed(2)
    cfg.faces.anchor, cfg.anchor_init = 2.0, str(save_folder(S2TFModel(cfg.model), tmp_path / "teacher", "G"))
    train(cfg, tmp_path / "run", cpu=True, max_steps=2)
    train(cfg, tmp_path / "run", cpu=True)  # resumes at 2 with a fresh teacher: none is in the checkpoint
    with open(tmp_path / "run" / "metrics-faces.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert all(float(r["anchor"]) > 0 for r in rows)
