"""The gallery index: a repeat query reuses each face's embedding (by content, per weights), an edited
image is embedded again, faceless images are remembered, a damaged cache is rebuilt."""

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from s2tf_cli.cache import cache_root
from s2tf_cli.gallery_index import GalleryIndex


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
    rows = lambda r: json.loads(r.stdout[r.stdout.index("[") :])  # noqa: E731
    assert rows(one) == rows(two) and len(rows(one)) == 3
