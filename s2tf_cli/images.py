"""Image input and output: any common format to RGB uint8, PNG out with provenance text chunks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import InputError, UsageError

MAX_PIXELS = 64_000_000  # above this an image is refused as a possible decompression bomb
DETECT_MAX_SIDE = 1024  # larger images are downscaled before face detection


def load_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB. EXIF rotation applied, alpha composited on white, 16-bit and gray converted."""
    from PIL import Image, ImageOps

    p = Path(path)
    if not p.exists():
        raise UsageError(f"{p}: no such file")
    if p.is_dir():
        raise UsageError(f"{p}: is a directory, not an image")
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with Image.open(p) as im:
            im = ImageOps.exif_transpose(im)
            return _to_rgb(im)
    except Image.DecompressionBombError:
        raise InputError(f"{p}: image is too large (over {MAX_PIXELS:,} pixels)") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"{p}: not a readable image ({_short(exc)})") from None


def _to_rgb(im) -> np.ndarray:
    from PIL import Image

    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        im = Image.fromarray((arr / top * 255).clip(0, 255).astype(np.uint8))
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im)
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:120]


def to_uint8(images) -> np.ndarray:
    """(B, 3, H, W) torch tensor in [-1, 1] -> (B, H, W, 3) uint8."""
    arr = images.detach().float().clamp(-1, 1).add(1).mul(127.5).round().byte()
    return arr.permute(0, 2, 3, 1).cpu().numpy()


def to_tensor(image: np.ndarray):
    """(H, W, 3) uint8 -> (3, H, W) float tensor in [-1, 1]."""
    import torch

    return torch.from_numpy(image).permute(2, 0, 1).float().div(127.5).sub(1)


def resize(image: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if image.shape[0] == size and image.shape[1] == size:
        return image
    interp = cv2.INTER_AREA if size < image.shape[0] else cv2.INTER_CUBIC
    return cv2.resize(image, (size, size), interpolation=interp)


def soft_pad(image: np.ndarray, pad: int) -> np.ndarray:
    """Grows `image` by `pad` pixels a side for crops that leave it: mirrored, then blurred further out.

    Edge replication smears the outermost row into streaks, and a training corpus full of streaks
    teaches the generator to paint them; a mirrored, blurred margin reads as out-of-focus background."""
    import cv2

    if pad <= 0:
        return image
    h, w = image.shape[:2]
    out = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)  # reflects again past one size
    # Blend weight on the signed distance to the photo's edge: 0 well inside, 1 a little outside, so
    # neither mirrored features nor the photo's rectangle survive.
    ramp = max(2.0, 0.06 * min(h, w))
    ys = np.arange(out.shape[0], dtype=np.float32)[:, None] - pad
    xs = np.arange(out.shape[1], dtype=np.float32)[None, :] - pad
    dy = np.maximum(np.maximum(-ys, ys - (h - 1)), 0)
    dx = np.maximum(np.maximum(-xs, xs - (w - 1)), 0)
    within = np.maximum(np.minimum(np.minimum(ys, h - 1 - ys), np.minimum(xs, w - 1 - xs)), 0)
    signed = np.sqrt(dx**2 + dy**2) - within
    weight = np.clip((signed + ramp) / (2 * ramp), 0, 1)[..., None]
    # A wide blur, done at reduced resolution (it is per frame in `data prepare`).
    sigma = max(3.0, 0.12 * min(h, w))
    shrink = max(1, int(sigma // 3))
    small = cv2.resize(out, (out.shape[1] // shrink, out.shape[0] // shrink), interpolation=cv2.INTER_AREA)
    blurred = cv2.resize(cv2.GaussianBlur(small, (0, 0), sigma / shrink), (out.shape[1], out.shape[0]),
                         interpolation=cv2.INTER_LINEAR)  # fmt: skip
    return (out * (1 - weight) + blurred * weight).round().astype(image.dtype)


def png_bytes(image: np.ndarray, metadata: dict[str, str]) -> bytes:
    """Encode an RGB uint8 image as PNG with `metadata` as tEXt/iTXt chunks (provenance)."""
    import io

    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for key, value in metadata.items():
        info.add_itxt(key, value)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def grid(images: list[np.ndarray], columns: int | None = None, pad: int = 4) -> np.ndarray:
    """Tile equally sized RGB images on a white background."""
    n = len(images)
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    h, w = images[0].shape[:2]
    out = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, 3), 255, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = img
    return out
