"""MP4 writing: H.264 yuv420p frames with the voice muxed as AAC, through imageio-ffmpeg."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np


def write_mp4(
    path: Path,
    frames: Iterable[np.ndarray],
    size: int,
    fps: float,
    audio_wav: Path | None,
    metadata: dict[str, str],
) -> int:
    """Encode (H, W, 3) uint8 frames as they arrive (encoding overlaps generation); returns the count."""
    import imageio_ffmpeg

    # one encoder thread: a 128-px H.264 stream needs little, and torch's threads keep the cores
    params = ["-threads", "1", "-movflags", "+faststart+use_metadata_tags", "-f", "mp4"]
    for key, value in metadata.items():
        params += ["-metadata", f"{key.replace(':', '_').lower()}={value}"]
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (size, size),
        fps=fps,
        codec="libx264",
        pix_fmt_out="yuv420p",
        quality=8,
        macro_block_size=2,
        ffmpeg_log_level="error",
        output_params=params,
        audio_path=str(audio_wav) if audio_wav else None,
        audio_codec="aac" if audio_wav else None,
    )
    writer.send(None)  # start ffmpeg
    count = 0
    try:
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
            count += 1
    finally:
        writer.close()
    return count
