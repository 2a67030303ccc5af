"""The model card (README.md) written into every weights folder."""

from __future__ import annotations

from .config import ModelConfig

RESPONSIBLE_USE = """\
## Responsible use

A voice carries only weak, statistical cues about appearance (apparent gender, age range, some
facial proportions). A face generated from a voice is an **estimate**, never an identification:
do not use it to identify, track or judge real people. Retrieval ranks only the gallery you give
it. Every image and video s2tf writes is stamped as synthetic (PNG text chunks, MP4 metadata)."""


GE2E_NOTE = """- E_id^a's backbone is resemblyzer's pretrained GE2E speaker encoder (Resemble AI, Apache-2.0;
  `s2tf data ge2e`), frozen; its head, and everything else, was trained by s2tf"""


def model_card(cfg: ModelConfig, title: str, details: str = "") -> str:
    """Markdown with Hub front matter; `details` holds data, recipe and evaluation where known."""
    ge2e = f"\n{GE2E_NOTE}" if cfg.audio_identity.backbone == "ge2e" else ""
    return f"""---
library_name: s2tf
tags: [speech-to-face, talking-face, s2tf]
---

# {title}

Speech2Talking-Face (S2TF, IJCAI 2021) weights for the `s2tf` tool: audio and visual identity
encoders over shared ArcFace centroids, audio content and visual identity-irrelevant encoders,
and a StyleGAN2-style generator.

- preset: `{cfg.preset}`, {cfg.image_size} px, f_id {cfg.id_dim}, f_ir {cfg.ir_dim}, {cfg.num_identities} centroids
- load: `S2TF.from_pretrained("path-or-org/name")`, or `s2tf face voice.wav --weights path-or-org/name`{ge2e}

{details}

{RESPONSIBLE_USE}
"""


def set_section(card: str, title: str, body: str) -> str:
    """Replace (or insert before the responsible-use note) the `## title` section of a card."""
    head = f"## {title}\n"
    section = f"{head}\n{body.strip()}\n\n"
    if head in card:
        start = card.index(head)
        nxt = card.find("\n## ", start + len(head))
        return card[:start] + section + (card[nxt + 1 :] if nxt != -1 else "")
    anchor = "## Responsible use"
    if anchor in card:
        i = card.index(anchor)
        return card[:i] + section + card[i:]
    return card.rstrip() + "\n\n" + section
