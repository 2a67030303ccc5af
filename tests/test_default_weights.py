"""The weights that ship with the package (weights/s2tf-real, the default; weights/s2tf-cpu, the previous one):
installed, checksummed, carded, usable."""

from pathlib import Path

import numpy as np
import pytest

from s2tf_cli.hub import load_model, resolve
from s2tf_cli.registry import DEFAULT_WEIGHTS, REGISTRY

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_default_is_embedded_and_its_checksum_pinned(monkeypatch):
    monkeypatch.delenv("S2TF_WEIGHTS", raising=False)
    source = resolve(None)
    entry = REGISTRY[DEFAULT_WEIGHTS]
    assert source.kind == "embedded" and entry.sha256 is not None
    assert source.sha256 == entry.sha256
    total = sum(f.stat().st_size for f in source.folder.iterdir())
    assert total < 60 * 2**20, f"weights folder is {total / 2**20:.1f} MB"


def test_default_is_a_trained_cpu_model_with_a_card(monkeypatch):
    monkeypatch.delenv("S2TF_WEIGHTS", raising=False)
    source = resolve(None)
    model = load_model(source)
    assert model.cfg.preset == "cpu-real" and model.cfg.image_size >= 64
    assert model.cfg.pose_scale and model.mouth_entry is not None and model.pose_reader is not None
    assert model.cfg.trained_steps > 0, "never ship untrained weights"
    card = (source.folder / "README.md").read_text()
    assert "non-commercial" in card and "estimate" in card and "## Training" in card


def test_default_draws_deterministic_distinct_faces(monkeypatch):
    from s2tf_cli.pipeline import S2TF

    monkeypatch.delenv("S2TF_WEIGHTS", raising=False)
    s2tf = S2TF.from_pretrained(device="cpu")
    a1, a2 = s2tf.face(EXAMPLES / "voice_a.wav")[0], s2tf.face(EXAMPLES / "voice_a.wav")[0]
    b = s2tf.face(EXAMPLES / "voice_b.wav")[0]
    assert a1.shape == (s2tf.cfg.image_size, s2tf.cfg.image_size, 3) and a1.dtype == np.uint8
    assert np.array_equal(a1, a2)
    assert np.abs(a1.astype(int) - b.astype(int)).mean() > 2.0, "two speakers, two faces"
    assert a1.std() > 20, "an image with structure, not a flat field"


def test_embedded_baseline_is_pinned_and_loads_as_the_voice2face_pipeline():
    from s2tf_cli.baselines.voice2face import Voice2FacePipeline
    from s2tf_cli.errors import WeightsError
    from s2tf_cli.loader import load
    from s2tf_cli.pipeline import S2TF

    source = resolve("voice2face-cpu")
    assert source.kind == "embedded" and source.sha256 == REGISTRY["voice2face-cpu"].sha256
    pipe = load("voice2face-cpu", device="cpu")
    assert isinstance(pipe, Voice2FacePipeline) and pipe.cfg.trained_steps > 0
    face = pipe.face(EXAMPLES / "voice_b.wav")[0]
    assert face.shape == (pipe.cfg.image_size, pipe.cfg.image_size, 3) and face.std() > 10
    card = (source.folder / "README.md").read_text()
    assert "estimate" in card and "baseline" in card
    with pytest.raises(WeightsError, match="a voice2face model, not an S2TF model; s2tf_cli.load"):
        S2TF.from_pretrained("voice2face-cpu", device="cpu")


def test_one_loader_loads_every_shipped_kind_by_name_and_says_what_it_is(tmp_path):
    import json

    import s2tf_cli
    from s2tf_cli.baselines.voice2face import Voice2FacePipeline
    from s2tf_cli.errors import WeightsError
    from s2tf_cli.evaluation.protocol import Scored
    from s2tf_cli.evaluation.syncnet import SyncNet
    from s2tf_cli.hub import folder_info, model_type
    from s2tf_cli.pipeline import S2TF

    kinds = {"s2tf-real": (S2TF, "s2tf"), "s2tf-cpu": (S2TF, "s2tf"), "voice2face-cpu": (Voice2FacePipeline, "voice2face"),
             "syncnet-cpu": (SyncNet, "syncnet")}  # fmt: skip
    assert set(kinds) == set(REGISTRY)  # every shipped model is in the registry
    for name, (cls, kind) in kinds.items():
        source = resolve(name)
        assert json.loads((source.folder / "config.json").read_text())["model_type"] == kind
        assert model_type(source.folder) == kind and folder_info(source)["model_type"] == kind
        model = s2tf_cli.load(name, device="cpu")
        assert isinstance(model, cls) and isinstance(model, Scored) == (kind != "syncnet")  # what eval scores
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "config.json").write_text('{"model_type": "vae"}')
    with pytest.raises(WeightsError, match="model_type 'vae' is not one this s2tf loads"):
        model_type(odd)


def test_every_registry_entry_can_be_had():
    """Embedded with its files, or on the Hub at a pinned revision: an entry with neither never loads."""
    from s2tf_cli.hub import embedded_folder

    for entry in REGISTRY.values():
        assert embedded_folder(entry) is not None or entry.revision, entry.name
        assert entry.sha256 and len(entry.sha256) == 64, entry.name
