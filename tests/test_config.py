import json

import pytest

from s2tf_cli.config import FORMAT_VERSION, PRESETS, ConfigError, ModelConfig, preset


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_round_trip_through_json(tmp_path, name):
    cfg = preset(name)
    cfg.save(tmp_path / "config.json")
    assert ModelConfig.load(tmp_path / "config.json") == cfg


def test_paper_preset_matches_the_paper():
    cfg = preset("paper")
    assert (cfg.image_size, cfg.id_dim, cfg.ir_dim) == (224, 2048, 512)
    assert (cfg.audio.n_fft, cfg.audio.hop_length, cfg.audio.n_mels) == (1280, 160, 80)
    assert cfg.audio.identity_window_s == 3.2
    assert len(cfg.generator.channels) == 6
    assert cfg.visual_identity.block == "bottleneck" and cfg.visual_identity.groups == 32


def test_cpu_preset_is_at_least_128px():
    assert preset("cpu").image_size >= 128


def _dump(cfg):
    return json.loads(json.dumps(cfg.to_dict()))


def test_unknown_key_is_an_error():
    data = _dump(preset("tiny"))
    data["generator"]["extra"] = 1
    with pytest.raises(ConfigError, match="unknown key.*extra"):
        ModelConfig.from_dict(data)


def test_missing_key_is_an_error():
    data = _dump(preset("tiny"))
    del data["id_dim"]
    with pytest.raises(ConfigError, match="missing key.*id_dim"):
        ModelConfig.from_dict(data)


def test_a_folder_older_than_an_added_key_loads_with_its_default():
    data = _dump(preset("tiny"))
    del data["centroid_prior"]
    assert ModelConfig.from_dict(data).centroid_prior == 0.0  # 0: the behaviour before the key existed


def test_wrong_type_is_an_error():
    data = _dump(preset("tiny"))
    data["audio"]["n_mels"] = "eighty"
    with pytest.raises(ConfigError, match="audio.n_mels"):
        ModelConfig.from_dict(data)


def test_other_format_version_is_refused():
    data = _dump(preset("tiny"))
    data["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(ConfigError, match="format_version"):
        ModelConfig.from_dict(data)


def test_image_size_must_fit_generator_blocks():
    with pytest.raises(ConfigError, match="divisible"):
        ModelConfig(image_size=100)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("huge")
