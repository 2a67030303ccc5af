"""`s2tf eval`: one table of the paper's metrics for one or more weights (thin, like cli.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from ..corpus_format import is_corpus
from ..errors import UsageError
from ..evaluation.catalog import HIGHER, LOWER, columns
from .common import JsonOutOpt, ReportOpt, _progress, _setup_logging, app, err, handle_errors

ORACLE_ROW = "label oracle"
DIFF_ROW = "Δ"  # "Δ B − A": B's figure minus A's on the same people, ± the paired standard error


def markdown_table(rows: dict[str, dict]) -> str:
    cols = columns(rows)
    lines = ["| weights | " + " | ".join(m.name for m in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(m.format(r.get(m.name)) for m in cols) + " |")
    return "\n".join(lines)


@app.command("eval")
@handle_errors
def eval_cmd(
    data: Annotated[Path, typer.Argument(help="Prepared corpus (s2tf data prepare); its test identities are scored.")],
    weights: Annotated[
        list[str],
        typer.Option("--weights", "-w", help="Weights to score; repeat for one row each (baselines, ablations)."),
    ] = [],  # noqa: B006
    real_voices: Annotated[
        Path | None,
        typer.Option("--real-voices", help="Real voice + face pairs (RAVDESS layout) to rank each person's own face."),
    ] = None,
    split: Annotated[str, typer.Option("--split", help="Corpus split to score.")] = "test",
    max_people: Annotated[int, typer.Option("--max-people", help="Identities scored at most.")] = 200,
    sync_clips: Annotated[int, typer.Option("--sync-clips", help="Clips scored for lip sync.")] = 20,
    json_out: JsonOutOpt = None,
    report: ReportOpt = None,
    figures: Annotated[Path | None, typer.Option("--figures", help="Write the pictures into this folder.")] = None,
    syncnet: Annotated[
        Path | None,
        typer.Option(
            "--syncnet",
            help="Lip-sync expert folder (`s2tf syncnet`), "
            "or `syncnet-cpu` (the embedded one), for sync offset and "
            "confidence.",
        ),
    ] = None,
    face_scores: Annotated[
        Path | None,
        typer.Option(
            "--face-scores",
            help="The raw tree a `data synth "
            "--face-voice` corpus was prepared from: adds how much of "
            "the voice-tied face scores f_id^v and f_id^a carry "
            "(held-out ridge R2).",
        ),
    ] = None,
    label_oracle: Annotated[
        bool,
        typer.Option(
            "--label-oracle/--no-label-oracle",
            help="Add the rows of rankers "
            "that know each voice's gender (and age group) and nothing else: "
            "the ceilings for voices tied to faces by those labels alone.",
        ),
    ] = True,
    update_card: Annotated[
        bool,
        typer.Option(
            "--update-card",
            help="Write the table into the `## Evaluation` section of each local weights folder's model card.",
        ),
    ] = False,
    device: Annotated[str, typer.Option("--device")] = "auto",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Score weights on held-out identities: identity, retrieval, matching AUC, attributes, lip sync, speed."""
    _setup_logging(verbose)
    from ..evaluation.protocol import evaluate
    from ..loader import load

    _require_corpus(data)
    syncnet = checked_expert_folder(syncnet) if syncnet is not None else None
    if real_voices is not None and not real_voices.is_dir():
        raise UsageError(f"{real_voices}: no such folder")
    if face_scores is not None:
        from ..evaluation.face_voice import face_scores as read_scores

        read_scores(face_scores)  # a wrong folder fails before any model is loaded
    rows: dict[str, dict] = {}
    per_person: dict[str, tuple] = {}
    folders: list[Path] = []
    for spec in weights or [None]:
        model = load(spec, device=device)
        if model.source is not None:
            folders.append(model.source.folder)
        with _progress() as bar:
            task = bar.add_task(f"evaluating {model.weights_label}", total=None)
            result = evaluate(
                model, data, split=split, real_voices=real_voices, max_people=max_people, sync_clips=sync_clips,
                seed=seed, figures=figures / _slug(model.weights_label) if figures else None, syncnet=syncnet,
                progress=lambda n, task=task: bar.advance(task, n), total=lambda n, task=task: bar.update(task, total=n),
                face_scores=face_scores,
            )  # fmt: skip
        rows[model.weights_label] = {**result.figures, "device": f"{model.device.type} {model.precision}"}
        per_person[model.weights_label] = (result.people, result.per_person)
    rows.update(paired_rows(per_person))
    if label_oracle:
        from ..evaluation.protocol import ORACLES, corpus_labels, label_oracle_metrics

        people = corpus_labels(data, split, max_people)  # labels only: no clip decoded again
        for name, keys in ORACLES.items():
            rows[f"{ORACLE_ROW} ({name})"] = label_oracle_metrics(people, keys)
    table = markdown_table(rows)
    _print_table(rows)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(rows, indent=2, default=float) + "\n")
    if report:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(f"# s2tf eval: `{data.name}`, split {split}\n\n{table}\n")
    if update_card:
        from ..modelcard import set_section

        body = (f"`s2tf eval {data.name} --split {split}` ({next(iter(rows.values()))['people']} held-out identities; "
                f"metrics defined in the s2tf docs, docs/evaluation.md):\n\n{table}")  # fmt: skip
        for folder in folders:
            card = folder / "README.md"
            if card.is_file() and os.access(card, os.W_OK):
                card.write_text(set_section(card.read_text(), "Evaluation", body))
                err.print(f"model card updated: {card}")


def paired_rows(per_person: dict[str, tuple[list[str] | None, dict]]) -> dict[str, dict]:
    """One "Δ B − A" row per later model B against the first, A, from the metrics both have per person:
    the difference of their figures and its paired bootstrap SE in the "±" column."""
    from ..evaluation.metrics import paired_difference

    names = list(per_person)
    if len(names) < 2:
        return {}
    first, (people_a, metrics_a) = names[0], per_person[names[0]]
    out: dict[str, dict] = {}
    for name in names[1:]:
        people_b, metrics_b = per_person[name]
        if people_a is None or people_a != people_b:
            continue  # other people: nothing to pair
        row: dict = {"people": len(people_a)}
        for metric, (values_a, weights) in metrics_a.items():
            if metric in metrics_b:
                row[metric], row[f"{metric} ±"] = paired_difference(values_a, metrics_b[metric][0], weights)
        out[f"{DIFF_ROW} {name} − {first}"] = row
    return out


def checked_expert_folder(path: Path) -> Path:
    """`_expert_folder`, or a UsageError where it holds no expert's weights."""
    folder = _expert_folder(path)
    if not (folder / "model.safetensors").is_file():
        raise UsageError(f"{folder}: not a sync expert folder (train one with `s2tf syncnet`)")
    return folder


def _expert_folder(path: Path) -> Path:
    """A path wins; otherwise a registry name (`syncnet-cpu`, embedded beside the default weights)."""
    from ..registry import REGISTRY

    if path.exists() or str(path) not in REGISTRY:
        return path
    from ..hub import resolve

    return resolve(str(path)).folder


def _require_corpus(data: Path) -> None:
    if not is_corpus(data):
        raise UsageError(f"{data}: not a prepared corpus (no manifest.jsonl; run `s2tf data prepare`)")


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)[:80]


def _print_table(rows: dict[str, dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="s2tf eval (↑ higher is better, ↓ lower)")
    table.add_column("metric")
    for name in rows:
        table.add_column(name, justify="right")
    for m in columns(rows):
        arrow = {HIGHER: " ↑", LOWER: " ↓"}.get(m.better, "")
        table.add_row(m.name + arrow, *(m.format(r.get(m.name)) for r in rows.values()))
    Console().print(table)


@app.command("syncnet")
@handle_errors
def syncnet_cmd(
    data: Annotated[Path, typer.Argument(help="Prepared corpus; its training clips teach the expert.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the expert (config.json, model.safetensors).")],
    steps: Annotated[int, typer.Option("--steps", help="Training steps.")] = 2000,
    batch: Annotated[int, typer.Option("--batch-size")] = 32,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Train the lip-sync expert that `s2tf eval --syncnet` uses to judge audio-video sync."""
    _setup_logging(verbose)
    from ..evaluation.syncnet import train_syncnet

    _require_corpus(data)
    with _progress() as bar:
        task = bar.add_task("training the sync expert", total=steps)
        summary = train_syncnet(data, out, steps=steps, batch=batch, seed=seed, progress=lambda n: bar.advance(task, n))
    err.print(f"sync expert: loss {summary['loss']:.3f}, in-batch accuracy {summary['acc']:.2f} over the last steps")
    typer.echo(str(out))
