"""The gallery index: a repeat query reuses each face's embedding (by content, per weights), an edited
image is embedded again, faceless images are remembered, a damaged cache is rebuilt."""

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from s2tf_cli.cache import cache_root
from s2tf_cli.gallery_index import FACE_EMBEDDING, GalleryIndex


@pytest.fixture
def my_gallery(gallery, tmp_path):
    folder = tmp_path / "g"
    shutil.copytree(gallery, folder)
    Image.fromarray(np.full((80, 80, 3), 128, np.uint8)).save(folder / "blank.png")  # no face in it
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".png", ".webp"))


def _ranking(matches):
    return [(m.path.name, round(m.score, 5)) for m in matches]


def test_repeat_query_uses_the_index_not_the_detector(pipeline, voices, my_gallery, monkeypatch):
    first, skipped = pipeline.retrieve(voices["low"], my_gallery)
    assert len(first) == 3 and [s.path.name for s in skipped if "no face" in s.reason] == ["blank.png"]
    assert any(s.path.name == "broken.jpg" for s in skipped)
    files = list((cache_root() / "galleries").glob("*.safetensors"))
    assert len(files) == 1 and pipeline.source.sha256[:32] in files[0].name

    def no_detection(*args, **kwargs):
        raise AssertionError("the index should have answered")

    monkeypatch.setattr(pipeline, "_face_crop", no_detection)
    again, skipped_again = pipeline.retrieve(voices["low"], my_gallery)
    assert _ranking(again) == _ranking(first)
    assert sorted((s.path.name, s.reason) for s in skipped_again) == sorted((s.path.name, s.reason) for s in skipped)


def test_index_is_keyed_by_content_not_name(pipeline, voices, my_gallery, monkeypatch):
    pipeline.retrieve(voices["low"], my_gallery)
    renamed = my_gallery[0].with_name("renamed" + my_gallery[0].suffix)
    os.replace(my_gallery[0], renamed)
    seen = []
    orig = pipeline._face_crop
    monkeypatch.setattr(pipeline, "_face_crop", lambda p, a: seen.append(p.name) or orig(p, a))
    pipeline.retrieve(voices["low"], [renamed, *my_gallery[1:]])
    assert seen == [], "a renamed file has the same content: no new embedding"
    Image.open(renamed).convert("RGB").rotate(3).save(renamed, format=Image.open(renamed).format)  # edited
    pipeline.retrieve(voices["low"], [renamed, *my_gallery[1:]])
    assert seen == [renamed.name]


def test_no_cache_leaves_no_index_and_other_weights_get_their_own(pipeline, voices, my_gallery):
    pipeline.retrieve(voices["low"], my_gallery, cache=False)
    assert not (cache_root() / "galleries").exists()
    a = GalleryIndex("a" * 64, aligned=False)
    b = GalleryIndex("b" * 64, aligned=False)
    c = GalleryIndex("a" * 64, aligned=True)
    assert len({a.path, b.path, c.path}) == 3
    assert a.path.name.endswith(f"-detect-{FACE_EMBEDDING}.safetensors")  # another embedding, another file


def test_a_face_and_its_mirror_image_have_one_identity(pipeline, pose_image):
    """f_id^v is the mean of the photo's and its mirror's: a mirrored photo is the same person."""
    import torch
    import torch.nn.functional as F

    from s2tf_cli.images import load_image, resize, to_tensor

    image = load_image(pose_image)
    f = pipeline.face_identity(image, aligned=True)
    torch.testing.assert_close(pipeline.face_identity(np.ascontiguousarray(image[:, ::-1]), aligned=True), f)
    crop = to_tensor(resize(image, pipeline.cfg.image_size))[None]
    with torch.no_grad():
        own = F.normalize(pipeline.model.visual_identity(crop), dim=-1)
        mirror = F.normalize(pipeline.model.visual_identity(crop.flip(-1)), dim=-1)
    torch.testing.assert_close(f, F.normalize(own + mirror, dim=-1)[0])
    assert not torch.allclose(own, mirror)


def test_damaged_index_is_rebuilt(pipeline, voices, my_gallery):
    first, _ = pipeline.retrieve(voices["low"], my_gallery)
    (index_file,) = (cache_root() / "galleries").glob("*.safetensors")
    index_file.write_bytes(b"not a safetensors file")
    again, _ = pipeline.retrieve(voices["low"], my_gallery)
    assert _ranking(again) == _ranking(first)
    assert len(GalleryIndex(pipeline.source.sha256, aligned=False).vectors) == 3


def test_cli_retrieve_twice_same_table(tiny_weights, voices, gallery):
    import json

    from typer.testing import CliRunner

    from s2tf_cli.cli import app

    runner = CliRunner()
    args = ["retrieve", str(voices["low"]), "--gallery", str(gallery), "--json", "-w", str(tiny_weights)]
    one, two = runner.invoke(app, args), runner.invoke(app, args)
    assert one.exit_code == 0 and two.exit_code == 0, one.output
    rows = lambda r: json.loads(r.stdout[r.stdout.index("{") :])["matches"]  # noqa: E731
    assert rows(one) == rows(two) and len(rows(one)) == 3


REPEAT = """
import json, sys
from s2tf_cli.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "torch": "torch" in sys.modules}))
"""


def _cli(tmp_path, *args):
    """The CLI in a fresh process (same cache): its JSON rows, exit code and whether torch was imported."""
    import json
    import subprocess
    import sys

    env = {**os.environ, "S2TF_CACHE": str(cache_root())}
    out = subprocess.run([sys.executable, "-c", REPEAT, *map(str, args)], capture_output=True, text=True, env=env)
    *rows, status = out.stdout.strip().splitlines()
    status = json.loads(status)
    return (json.loads("\n".join(rows))["matches"] if rows else None), status["code"], status["torch"], out.stderr


def test_repeat_cli_query_is_answered_from_the_indexes_without_torch(tiny_weights, voices, my_gallery, tmp_path):
    folder = my_gallery[0].parent
    args = ["retrieve", voices["low"], "--gallery", folder, "--json", "-w", tiny_weights]
    first, code, torch_used, _ = _cli(tmp_path, *args)
    assert code == 0 and torch_used and len(first) == 3
    again, code, torch_used, err = _cli(tmp_path, *args)
    assert code == 0 and not torch_used, "a repeat query must not load the model"
    assert again == first
    assert "blank.png" in err and "gallery files skipped" in err  # skipped images still reported

    Image.open(my_gallery[0]).convert("RGB").rotate(5).save(my_gallery[0])  # an edited image: not indexed
    third, code, torch_used, _ = _cli(tmp_path, *args)
    assert code == 0 and torch_used and len(third) == 3

    other = tmp_path / "other.wav"  # another voice: not in the voice index, so the model runs
    shutil.copy(voices["high"], other)
    _, code, torch_used, _ = _cli(tmp_path, "retrieve", other, "--gallery", folder, "--json", "-w", tiny_weights)
    assert code == 0 and torch_used


def test_voices_are_remembered_only_when_asked(pipeline, voices, my_gallery, tiny_weights):
    from s2tf_cli.gallery_index import VoiceIndex, cached_retrieval, file_key

    pipeline.retrieve(voices["low"], my_gallery)  # the library's default keeps no voice
    assert VoiceIndex(pipeline.source.sha256).vectors == {}
    assert cached_retrieval(voices["low"], my_gallery, pipeline.source.sha256, aligned=False) is None
    matches, skipped = pipeline.retrieve(voices["low"], my_gallery, remember_voice=True)
    assert list(VoiceIndex(pipeline.source.sha256).vectors) == [file_key(voices["low"])]
    cached, cached_skipped = cached_retrieval(voices["low"], my_gallery, pipeline.source.sha256, aligned=False)
    assert _ranking(cached) == _ranking(matches) and [m.score for m in cached] == [m.score for m in matches]
    assert [(s.path, s.reason) for s in cached_skipped] == [(s.path, s.reason) for s in skipped]
    assert cached_retrieval(voices["low"], my_gallery, pipeline.source.sha256, aligned=True) is None


def test_cli_no_cache_keeps_no_voice(tiny_weights, voices, gallery):
    from typer.testing import CliRunner

    from s2tf_cli.cli import app

    result = CliRunner().invoke(app, ["retrieve", str(voices["low"]), "-g", str(gallery), "--no-cache", "-w",
                                      str(tiny_weights)])  # fmt: skip
    assert result.exit_code == 0 and not (cache_root() / "galleries").exists()
