"""The training section of a model card, read back from a run folder (config, metrics, times)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..corpus_format import is_corpus, read_manifest

# Columns worth reporting per stage log, in order.
KEY_METRICS = ["v_l1", "v_per", "v_adv", "vid_acc", "loss_d", "aid_acc", "id_sync", "id_sync_acc", "s_sync",
               "s_sync_acc", "va_l1", "a_l1"]  # fmt: skip


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _mean(rows: list[dict[str, str]], key: str) -> float | None:
    values = [float(r[key]) for r in rows if r.get(key) not in (None, "")]
    return sum(values) / len(values) if values else None


def loss_table(run: Path, window: int = 20) -> str:
    """Per stage/phase log: metric means over its first and last `window` logged rows (at most half
    the rows each, so a short log's two columns never average the same rows)."""
    lines = ["| log | steps | metric | first rows | last rows |", "|---|---|---|---|---|"]
    for path in sorted(run.glob("metrics-*.csv")):
        rows = _rows(path)
        if not rows:
            continue
        span = f"{rows[0]['step']}-{rows[-1]['step']}"
        w = max(1, min(window, len(rows) // 2))
        for key in KEY_METRICS:
            first, last = _mean(rows[:w], key), _mean(rows[-w:], key)
            if first is not None:
                lines.append(f"| {path.stem.removeprefix('metrics-')} | {span} | {key} | {first:.3f} | {last:.3f} |")
    return "\n".join(lines)


# Terms of the data sets this project's corpora are built from, by the identity prefix `data synth` gives them.
SOURCE_TERMS = {
    "celeba": "CelebA photos (Liu et al. 2015): non-commercial research use only",
    "utkface": "UTKFace photos (Zhang et al. 2017): non-commercial research use only",
    "ravdess": "RAVDESS speech and faces (Livingstone & Russo 2018): CC BY-NC-SA 4.0",
}


def corpus_details(corpus: Path, title: str = "Prepared corpus") -> str:
    """Identities and clips per source and split of a prepared corpus, with each source's terms."""
    if not is_corpus(corpus):
        return ""
    counts: dict[tuple[str, str], tuple[set, int]] = {}
    for row in read_manifest(corpus):
        key = (row["identity"].split("-", 1)[0], row.get("split", "train"))
        ids, clips = counts.get(key, (set(), 0))
        ids.add(row["identity"])
        counts[key] = (ids, clips + 1)
    lines = ["### Data", "", f"{title} `{Path(corpus).name}`:", "",
             "| source | split | identities | clips |", "|---|---|---|---|"]  # fmt: skip
    for (source, split), (ids, clips) in sorted(counts.items()):
        lines.append(f"| {source} | {split} | {len(ids)} | {clips} |")
    sources = sorted({source for source, _ in counts})
    lines += ["", "Terms of the sources (the weights inherit them: **non-commercial research use only**):", ""]
    lines += [f"- {SOURCE_TERMS.get(s, f'{s}: see the source data set')}" for s in sources]
    return "\n".join(lines)


def run_details(run: Path, corpus_note: str = "") -> str:
    run = Path(run)
    parts = ["## Training"]
    cfg_path = run / "train_config.json"
    if cfg_path.is_file():
        cfg = json.loads(cfg_path.read_text())
        steps = cfg.get("steps", {})
        parts.append(
            f"- stages: visual {steps.get('visual')} steps, sync {steps.get('sync')}, finetune {steps.get('finetune')}; "
            f"batch {cfg.get('batch_size')}, lr {cfg.get('lr')} (G, D) / {cfg.get('encoder_lr')} (encoders), "
            f"seed {cfg.get('seed')}"
        )
        parts.append(f"- loss weights: {json.dumps(cfg.get('loss', {}))}")
        if cfg.get("frozen"):
            parts.append(f"- frozen in every stage: {', '.join(cfg['frozen'])}")
        if cfg.get("audio_identity_init"):
            parts.append(f"- E_id^a's GE2E backbone from `{Path(cfg['audio_identity_init']).name}` (`s2tf data ge2e`)")
        if cfg.get("discriminator_warmup"):
            parts.append(f"- the first {cfg['discriminator_warmup']} steps trained the (fresh) discriminator alone")
        if not corpus_note and cfg.get("corpus"):
            corpus_note = corpus_details(Path(cfg["corpus"]))
            if cfg.get("extra_faces") and cfg.get("extra_face_share", 0) > 0:
                photos = corpus_details(Path(cfg["extra_faces"]), f"Stage 1 also drew {cfg['extra_face_share']:.0%} "
                                        "of each batch from the voiceless photo corpus")  # fmt: skip
                corpus_note += "\n\n" + photos.removeprefix("### Data\n\n") if photos else ""
    summary = run / "summary.json"
    if summary.is_file():
        s = json.loads(summary.read_text())
        times = ", ".join(f"{k} {v / 60:.1f} min" for k, v in s.get("stage_seconds", {}).items())
        where = f" on {s['device']} in {s['precision']}" if s.get("precision") else ""
        parts.append(
            f"- trained to step {s.get('steps')} of {s.get('total_steps')}{where}; wall time per stage: {times}"
        )
        if s.get("init"):
            parts.append(f"- continued from `{s['init']}`, which had {s.get('init_steps', 0)} training steps behind it")
    if corpus_note:
        parts.append(corpus_note)
    parts.append("\n### Losses (means over the first and last logged rows of each stage)\n\n" + loss_table(run))
    return "\n".join(parts)
