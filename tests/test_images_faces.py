"""Image loading (formats, modes, EXIF) and face finding for pose references and galleries."""

import numpy as np
import pytest
from PIL import Image

from s2tf_cli.errors import InputError, UsageError
from s2tf_cli.faces import FaceBox, crop_face, detect_faces, find_face
from s2tf_cli.images import grid, load_image, png_bytes, soft_pad


def test_modes_become_rgb_uint8(tmp_path):
    rgba = Image.new("RGBA", (20, 10), (255, 0, 0, 0))
    rgba.save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    assert out.shape == (10, 20, 3) and out.dtype == np.uint8
    assert (out == 255).all(), "transparent pixels composite onto white"
    Image.new("L", (8, 8), 77).save(tmp_path / "g.bmp")
    assert (load_image(tmp_path / "g.bmp") == 77).all()
    Image.fromarray(np.full((6, 6), 65535, np.uint16)).save(tmp_path / "d.png")
    assert (load_image(tmp_path / "d.png") == 255).all()
    Image.new("RGB", (5, 7), (1, 2, 3)).save(tmp_path / "w.webp", lossless=True)
    assert load_image(tmp_path / "w.webp")[0, 0].tolist() == [1, 2, 3]


def test_exif_rotation_is_honoured(tmp_path):
    im = Image.new("RGB", (40, 20), (0, 0, 0))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    im.save(tmp_path / "r.jpg", exif=exif)
    assert load_image(tmp_path / "r.jpg").shape == (40, 20, 3)


def test_bad_images(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        load_image(tmp_path / "none.png")
    (tmp_path / "t.jpg").write_text("text")
    with pytest.raises(InputError, match="not a readable image"):
        load_image(tmp_path / "t.jpg")


def test_decompression_bomb_refused(tmp_path, monkeypatch):
    import s2tf_cli.images as images

    Image.new("L", (400, 400)).save(tmp_path / "big.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 10_000)
    with pytest.raises(InputError, match="too large"):
        load_image(tmp_path / "big.png")


def test_face_found_in_example(pose_image):
    image = load_image(pose_image)
    boxes = detect_faces(image)
    assert len(boxes) == 1
    b = boxes[0]
    assert 0.3 * image.shape[1] < b.w < 0.9 * image.shape[1]
    crop, count = find_face(image, 64)
    assert crop.shape == (64, 64, 3) and count == 1


def test_no_face_in_noise():
    noise = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    assert find_face(noise, 32) == (None, 0)


def test_crop_leaving_the_image_is_padded():
    image = np.zeros((50, 50, 3), np.uint8)
    crop = crop_face(image, FaceBox(-10, -10, 40, 40), 32)
    assert crop.shape == (32, 32, 3)


def test_soft_pad_blurs_instead_of_streaking():
    image = np.random.default_rng(0).integers(0, 255, (60, 60, 3), dtype=np.uint8)
    out = soft_pad(image, 100)  # more than one reflection's reach
    assert out.shape == (260, 260, 3) and out.dtype == np.uint8
    assert np.array_equal(out[110:150, 110:150], image[10:50, 10:50]), "the photo itself is untouched"
    margin = out[:90].astype(float)
    assert margin.std(axis=1).mean() < 0.2 * image.std(), "smooth across: replicated edges would streak"
    assert margin.std(axis=0).mean() < 0.2 * image.std(), "and smooth down: no mirrored detail"
    assert abs(margin.mean() - image.mean()) < 20, "its colour is the photo's"


def test_png_provenance_and_grid(tmp_path):
    import io

    tiles = [np.full((4, 4, 3), i * 50, np.uint8) for i in range(5)]
    g = grid(tiles, columns=3, pad=1)
    assert g.shape == (2 * 5 + 1, 3 * 5 + 1, 3)
    data = png_bytes(g, {"s2tf:synthetic": "true"})
    assert Image.open(io.BytesIO(data)).text["s2tf:synthetic"] == "true"


def _two_faces(pose_image) -> np.ndarray:
    """The example face at full size and at 60 %, side by side on one canvas."""
    base = Image.open(pose_image).convert("RGB")
    small = base.resize((int(base.width * 0.6), int(base.height * 0.6)))
    canvas = Image.new("RGB", (base.width + small.width, base.height), (128, 128, 128))
    canvas.paste(base, (0, 0))
    canvas.paste(small, (base.width, (base.height - small.height) // 2))
    return np.asarray(canvas)


def test_several_faces_take_the_largest_and_say_so(pose_image, pipeline, caplog):
    image = _two_faces(pose_image)
    boxes = detect_faces(image)
    assert len(boxes) == 2 and boxes[0].area > boxes[1].area and boxes[0].x < image.shape[1] / 2
    with caplog.at_level("WARNING"):
        pipeline.pose_feature(image)
    assert "2 faces found; using the largest" in caplog.text


def test_huge_image_is_downscaled_for_detection_boxes_in_its_own_pixels(pose_image):
    base = load_image(pose_image)
    box = detect_faces(base)[0]
    factor = 4000 / max(base.shape[:2])
    huge = np.asarray(Image.fromarray(base).resize((round(base.shape[1] * factor), round(base.shape[0] * factor))))
    big = detect_faces(huge)[0]
    assert abs(big.w / factor - box.w) < 0.15 * box.w and abs(big.x / factor - box.x) < 0.15 * box.w


def test_tiny_image_has_no_face_and_says_so(pipeline, tmp_path):
    Image.new("RGB", (3, 2), (200, 180, 170)).save(tmp_path / "tiny face.png")
    assert find_face(load_image(tmp_path / "tiny face.png"), 64) == (None, 0)
    from s2tf_cli.errors import NoFaceError

    with pytest.raises(NoFaceError, match="tiny face.png: no face found"):
        pipeline.pose_feature(tmp_path / "tiny face.png")
