"""The README's talk strip: `s2tf talk` frames of one voice, every 8th frame in a row, then 16 consecutive frames
around the first blink. `python examples/talk_strip.py VOICE OUT.jpg [--weights W] [--pose REF]`."""

from __future__ import annotations

import argparse

import numpy as np

from s2tf_cli import images
from s2tf_cli.eyes import EyeMotion
from s2tf_cli.pipeline import S2TF

TILE = 96


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("voice")
    ap.add_argument("out")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--pose", default=None)
    ap.add_argument("--frames", type=int, default=16, help="tiles per row")
    args = ap.parse_args()
    s2tf = S2TF.from_pretrained(args.weights, device="cpu")
    n, frames = s2tf.talk_frames(args.voice, pose=args.pose)
    frames = [images.resize(f, TILE) for f in frames]
    lids, _ = EyeMotion(25.0, 0).step(n)  # the schedule talk drew (seed 0): where the first blink shuts
    shut = np.flatnonzero(np.asarray(lids) > 0.9)
    first = int(shut[0]) if len(shut) else n // 2
    start = max(0, min(first - args.frames // 2, n - args.frames))
    rows = [frames[::8][: args.frames], frames[start : start + args.frames]]
    pad = np.full((TILE, TILE, 3), 255, np.uint8)
    strip = np.concatenate([np.concatenate(r + [pad] * (args.frames - len(r)), 1) for r in rows], 0)
    import cv2

    cv2.imwrite(args.out, cv2.cvtColor(strip, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(args.out)


if __name__ == "__main__":
    main()
