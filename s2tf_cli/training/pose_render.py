"""How far G turns the head for an offset in f_ir's pose entries, read back by the model's own E_ir^v
(or its pose reader, where it has one).

A GAN stage teaches G to draw the pose its entries say, but it draws part of it (run 22: about 0.8 of a
yaw offset as E_ir^v reads it, 0.6 as dlib's landmarks do). `talk`'s head motion is stated in the pose
judge's units; dividing by this share makes the drawn head move about as far as stated. Measured at
export on the no-pose face (f_ir = 0) of the model's own centroids, so it needs no data.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOWEST, HIGHEST = 0.25, 1.5  # motion is never asked more than 4x, nor damped below 2/3


@torch.no_grad()
def pose_render_share(model, identities: int = 64, offset: float = 0.15) -> list[float]:
    """Per pose entry, (read(+d) - read(-d)) / 2d for an offset d of `offset` in the judge's units,
    averaged over the first `identities` centroids, clipped to [LOWEST, HIGHEST]; [] without pose entries."""
    cfg = model.cfg
    if not cfg.pose_scale:
        return []
    was_training = model.training
    model.eval()
    try:
        rows = model.centroids.weight[:identities].float()
        f_id = F.normalize(rows, dim=-1) * cfg.id_dim**0.5
        noise = model.generator.make_noise(0, rows.device)
        shares = []
        for k, scale in enumerate(cfg.pose_scale):
            d = offset / scale
            read = []
            for sign in (-1.0, 1.0):
                f_ir = torch.zeros(len(rows), cfg.ir_dim, device=rows.device)
                f_ir[:, k] = sign * d
                img = model.generator(torch.cat([f_id, f_ir], dim=-1), noise)
                read.append(model.irrelevant(img)[:, k].float().mean())
            share = float((read[1] - read[0]) / (2 * d))
            shares.append(round(min(max(share, LOWEST), HIGHEST), 4))
        return shares
    finally:
        model.train(was_training)
