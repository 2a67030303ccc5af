"""Every shipped recipe trains: one step on tiny data in the layout it reads, warm-started from the weights
it pins, or, where `--init` comes from the command line, from a weights folder of the recipe's own model
(as the run-18 chain gives each stage the previous stage's export). A recipe that pins weights the default
name held before (`HISTORICAL_INITS`) is refused by name (test_training checks the message); here it starts
from those weights taken out of git history, as its refusal tells a user to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import with_pose_entries
from safetensors.torch import load_file
from test_training import HISTORICAL_INITS, INIT_FROM_COMMAND_LINE, RECIPES

from s2tf_cli.training.config import read_recipe

pytestmark = pytest.mark.slow


def _pinned_elsewhere(path: Path) -> bool:
    recipe = read_recipe(path)
    spec = str(recipe.get("generator_init") or recipe.get("init") or "")
    return spec.partition("@sha256:")[2] in HISTORICAL_INITS


NAMES = sorted(str(p.relative_to(RECIPES)) for p in RECIPES.rglob("*.json"))
# where each historical pin's weights live: (commit, folder)
HISTORY = {"3189969dc114": ("f0ce929", "weights/s2tf-cpu")}
REPO = RECIPES.parent


@pytest.fixture(scope="module")
def historical(tmp_path_factory) -> dict[str, Path]:
    """The pinned weights out of git history, each checked against its pin."""
    import hashlib
    import subprocess

    out = {}
    for pin, (commit, folder) in HISTORY.items():
        found = subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{commit}:{folder}/model.safetensors"],
                               capture_output=True)  # fmt: skip
        if found.returncode != 0:
            pytest.skip(f"recipes pinned to {pin} need the git history (commit {commit}); this checkout lacks it")
        dest = tmp_path_factory.mktemp("history") / pin
        dest.mkdir()
        for name in ("model.safetensors", "config.json"):
            blob = subprocess.run(["git", "-C", str(REPO), "show", f"{commit}:{folder}/{name}"], capture_output=True,
                                  check=True).stdout  # fmt: skip
            (dest / name).write_bytes(blob)
        assert hashlib.sha256((dest / "model.safetensors").read_bytes()).hexdigest().startswith(pin)
        out[pin] = dest
    assert set(out) == set(HISTORICAL_INITS)
    return out


@pytest.fixture(scope="module")
def real_weights(tmp_path_factory) -> Path:
    """A weights folder of the cpu-real model (random weights): what the run-18 chain's stages pass on."""
    import dataclasses

    from s2tf_cli.config import preset
    from s2tf_cli.hub import save_folder
    from s2tf_cli.models.s2tf import S2TFModel

    torch.manual_seed(0)
    model = S2TFModel(dataclasses.replace(preset("cpu-real"), trained_steps=7))
    return save_folder(model, tmp_path_factory.mktemp("w") / "cpu-real", "test weights")


@pytest.fixture(scope="module")
def posed_real_weights(tmp_path_factory, real_weights) -> Path:
    """`real_weights` saying that f_ir's first entries are yaw, pitch and roll (a pose-taught GAN stage's)."""
    return with_pose_entries(real_weights, tmp_path_factory.mktemp("w") / "cpu-real-posed", [0.0, 0.55, 0.0],
                             [0.17, 0.11, 0.05])  # fmt: skip


@pytest.fixture(scope="module")
def mouthed_real_weights(tmp_path_factory, posed_real_weights) -> Path:
    """`posed_real_weights` with a mouth entry after the pose entries (what the mouth-teacher stage continues)."""
    import shutil

    out = tmp_path_factory.mktemp("w") / "cpu-real-mouthed"
    shutil.copytree(posed_real_weights, out)
    cfg = json.loads((out / "config.json").read_text())
    cfg["mouth_center"], cfg["mouth_scale"] = 0.08, 0.1
    (out / "config.json").write_text(json.dumps(cfg))
    return out


@pytest.fixture(scope="module")
def readered_real_weights(tmp_path_factory, posed_real_weights) -> Path:
    """`posed_real_weights` with a pose reader of the recipes' widths (what a reader-read pose cycle needs)."""
    import dataclasses

    from s2tf_cli.hub import load_model, resolve, save_folder
    from s2tf_cli.models.s2tf import S2TFModel
    from s2tf_cli.training.config import TrainConfig

    posed = load_model(resolve(str(posed_real_weights)))
    model = S2TFModel(dataclasses.replace(posed.cfg, pose_reader=list(TrainConfig().pose_reader)))
    missing, unexpected = model.load_state_dict(posed.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("pose_reader.") for k in missing)
    return save_folder(model, tmp_path_factory.mktemp("w") / "cpu-real-readered", "test weights with a pose reader")


@pytest.fixture(scope="module")
def real_voiceset(tmp_path_factory, s2f_tree, libri_tree, face_folders, real_weights) -> Path:
    from s2tf_cli.data.voiceset import build_voiceset
    from s2tf_cli.hub import load_model, resolve

    out = tmp_path_factory.mktemp("voiceset") / "voices"
    build_voiceset([s2f_tree, face_folders["real"], libri_tree], out, load_model(resolve(str(real_weights))).eval(),
                   augmented=0)  # fmt: skip
    return out


@pytest.fixture(scope="module")
def ge2e_weights(tmp_path_factory) -> Path:
    """A speaker-encoder file in the shape `s2tf data ge2e` writes (random weights: resemblyzer's are not
    part of the test install)."""
    from safetensors.torch import save_file

    from s2tf_cli.config import preset
    from s2tf_cli.models.s2tf import S2TFModel

    backbone = S2TFModel(preset("cpu-ge2e")).audio_identity.backbone
    path = tmp_path_factory.mktemp("ge2e") / "ge2e.safetensors"
    save_file({k: v.contiguous() for k, v in backbone.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory, face_folders) -> Path:
    from typer.testing import CliRunner

    from s2tf_cli.cli import app

    out = tmp_path_factory.mktemp("photos") / "photos"
    args = [
        "data",
        "photos",
        str(face_folders["celeb"]),
        str(face_folders["flat"]),
        str(out),
        "--size",
        "32",
        "-j",
        "1",
    ]
    assert CliRunner().invoke(app, args).exit_code == 0
    return out


@pytest.mark.parametrize("name", NAMES)
def test_every_recipe_warm_starts_and_takes_a_step(name, prepared_corpus, faceset, real_voiceset, real_weights, photos,
                                                   request, tmp_path):  # fmt: skip
    """`s2tf train` of a recipe that states only a smaller batch over the shipped one (`"base"`)."""
    from typer.testing import CliRunner

    from s2tf_cli.cli import app

    recipe = read_recipe(RECIPES / name)
    model = recipe.get("model", {})
    real = isinstance(model, dict) and model.get("preset") == "cpu-real"
    small = {"base": str(RECIPES / name), "batch_size": 4, "log_every": 1, "checkpoint_every": 1}
    small.update({"sample_every": 0, "precision": "fp32"} if "baseline" not in recipe else {})
    if recipe.get("audio_identity_init"):
        small["audio_identity_init"] = str(request.getfixturevalue("ge2e_weights"))
    (tmp_path / "small.json").write_text(json.dumps(small))
    args = ["train", str(tmp_path / "small.json"), "--out", str(tmp_path / "run"), "--max-steps", "1", "--cpu"]
    if recipe.get("faces", {}).get("pose") or recipe.get("steps", {}).get("pose_reader"):
        faceset = request.getfixturevalue("posed_faceset")
    if recipe.get("steps", {}).get("pose_reader"):  # it continues weights whose f_ir carries pose entries
        real_weights = request.getfixturevalue("posed_real_weights")
    if recipe.get("faces", {}).get("pose_cycle_reader"):  # G's pose read back by the weights' own reader
        real_weights = request.getfixturevalue("readered_real_weights")
    if recipe.get("steps", {}).get("mouth_teacher"):  # weights with a mouth entry; the teacher speaks real voices
        real_weights = request.getfixturevalue("mouthed_real_weights")
        args += ["--voices", str(request.getfixturevalue("s2f_tree"))]
    data = {"corpus": prepared_corpus, "faceset": faceset, "voiceset": real_voiceset, "extra_faces": photos}
    for key, folder in data.items():
        if recipe.get(key) is not None or (key == "extra_faces" and recipe.get("extra_face_share")):
            args += [f"--{key.replace('_', '-')}", str(folder)]
    given = name in INIT_FROM_COMMAND_LINE or (real and "init" in recipe and not recipe["init"])
    if given:
        args += ["--init", str(real_weights) if real else "s2tf-cpu"]
    elif _pinned_elsewhere(RECIPES / name):
        given = True
        pin = str(recipe.get("generator_init") or recipe["init"]).partition("@sha256:")[2]
        real_weights = request.getfixturevalue("historical")[pin]
        args += ["--init", str(real_weights)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    ckpt = next((tmp_path / "run").rglob("module.safetensors")).parent
    state = load_file(str(ckpt / "module.safetensors"))
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()), "finite after a step"
    spec = args[args.index("--init") + 1] if "--init" in args else recipe.get("init")
    if spec:  # warm-started: the run counts the init's training steps as its own start
        from s2tf_cli.hub import resolve

        trained = json.loads((resolve(spec).folder / "config.json").read_text())["trained_steps"]
        state = json.loads((ckpt / "state.json").read_text())
        assert trained > 0 and state["extra"]["init_steps"] == trained, (trained, state)
