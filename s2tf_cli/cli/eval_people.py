"""`s2tf eval-people`: weights scored on real validation people (thin, like cli.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..errors import UsageError
from .common import JsonOutOpt, ReportOpt, _progress, _setup_logging, app, err, handle_errors

# (column, key in the results, format); the targets are read off these.
COLUMNS = [
    ("gender balanced %", "gender balanced %", "{:.1f}"), ("gender male %", "gender male %", "{:.1f}"),
    ("gender female %", "gender female %", "{:.1f}"), ("median rank", "median rank", "{:.1f}"),
    ("gallery", "gallery", "{}"), ("R@10 %", "R@10 %", "{:.1f}"), ("R@10 chance %", "R@10 chance %", "{:.1f}"),
    ("KID", "KID", "{:.4f}"), ("variety ratio", "variety ratio", "{:.2f}"), ("sample spread", "sample spread", "{:.3f}"),
    ("sample gender %", "sample gender %", "{:.1f}"), ("yaw corr", "yaw corr", "{:.2f}"), ("yaw MAE", "yaw MAE", "{:.3f}"),
    ("yaw MAE frontal", "yaw MAE frontal", "{:.3f}"), ("pitch corr", "pitch corr", "{:.2f}"),
    ("roll corr", "roll corr", "{:.2f}"), ("pose refs", "pose refs", "{}"),
    ("talk yaw corr", "talk yaw corr", "{:.2f}"), ("talk mouth corr", "talk mouth corr", "{:.2f}"),
    ("talk mouth corr reversed", "talk mouth corr reversed", "{:.2f}"),
    ("talk still mouth corr", "talk still mouth corr", "{:.2f}"), ("talk flicker", "talk flicker", "{:.2f}"),
    ("talk sync offset 0 %", "talk sync offset 0 %", "{:.0f}"), ("talk sync conf", "talk sync conf", "{:.3f}"),
    ("talk sync conf rolled", "talk sync conf rolled", "{:.3f}"),
    ("head yaw spread", "head yaw spread", "{:.3f}"), ("head yaw speed /s", "head yaw speed", "{:.3f}"),
    ("head pitch spread", "head pitch spread", "{:.3f}"), ("head pitch speed /s", "head pitch speed", "{:.3f}"),
    ("head yaw jitter", "head yaw jitter", "{:.4f}"), ("blinks /min", "head blinks per min", "{:.1f}"),
    ("blink s", "head blink s", "{:.2f}"), ("identity first-last", "head identity first-last", "{:.3f}"),
    ("identity least", "head identity least", "{:.3f}"),
]  # fmt: skip
# Figures compared per clip (gender, R@10, rank) or per pose reference (yaw error) in the paired Δ rows.
PAIRED = ("gender correct %", "R@10 %", "mean rank", "yaw abs error")


def _cell(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    return fmt.format(value)


def people_table(rows: dict[str, dict]) -> str:
    lines = ["| weights | " + " | ".join(c for c, _, _ in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(_cell(r.get(k), f) for _, k, f in COLUMNS) + " |")
    return "\n".join(lines)


@app.command("eval-people")
@handle_errors
def eval_people_cmd(
    s2f: Annotated[
        Path | None,
        typer.Option("--s2f", help="s2f folder (people.csv, voxceleb/, avspeech/): its validation people are scored."),
    ] = None,
    ravdess: Annotated[
        Path | None, typer.Option("--ravdess", help="RAVDESS-layout folder: its validation actors are scored too.")
    ] = None,
    weights: Annotated[
        list[str],
        typer.Option(
            "--weights",
            "-w",
            help="Weights to score; repeat for one row each. The first is the reference of the paired Δ rows.",
        ),
    ] = [],  # noqa: B006
    json_out: JsonOutOpt = None,
    report: ReportOpt = None,
    talking: Annotated[
        Path | None,
        typer.Option(
            "--talking",
            help="Folder of real talking clips (.mp4 with "
            "audio): `talk` with each clip's audio and its video as --pose, "
            "head yaw and mouth opening against the video's.",
        ),
    ] = None,
    grid_out: Annotated[
        Path | None,
        typer.Option(
            "--grid", help="PNG: 12 validation people's photos over the face each model draws from their voice."
        ),
    ] = None,
    syncnet: Annotated[
        Path | None,
        typer.Option(
            "--syncnet",
            help="Lip-sync expert folder or `syncnet-cpu`: its offset and confidence on each model's "
            "still-pose frames of the --talking clips, and on the real frames (can it read real faces?).",
        ),
    ] = None,
    device: Annotated[str, typer.Option("--device")] = "auto",
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Score weights on real people no training saw (gender, retrieval, realism, variety, pose), with
    judges that are not part of the model."""
    _setup_logging(verbose)
    from ..evaluation.metrics import paired_difference
    from ..evaluation.motion import real_motion, talking_motion
    from ..evaluation.real_people import (
        comparison_grid,
        evaluate_people,
        real_sync,
        talking_figures,
        validation_people,
    )
    from ..pipeline import S2TF

    for folder in (s2f, ravdess, talking):
        if folder is not None and not folder.is_dir():
            raise UsageError(f"{folder}: no such folder")
    expert = _sync_expert(syncnet, talking) if syncnet is not None else None
    clips = sorted(talking.glob("*.mp4")) if talking is not None else []
    if talking is not None and not clips:
        raise UsageError(f"{talking}: no .mp4 clips")
    if s2f is None and ravdess is None:
        raise UsageError("give --s2f and/or --ravdess")
    try:
        people = validation_people(s2f, ravdess)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    if len(people) < 3:
        raise UsageError("fewer than 3 validation people found: nothing to rank")
    rows: dict[str, dict] = {}
    faces: dict[str, list] = {}
    per_item: dict[str, dict] = {}
    for spec in weights or [None]:
        model = S2TF.from_pretrained(spec, device=device)
        with _progress() as bar:
            task = bar.add_task(f"evaluating {model.weights_label}", total=sum(len(p.voices) for p in people))
            res = evaluate_people(model, people, progress=lambda n, task=task: bar.advance(task, n))
        if clips:
            res |= talking_figures(model, clips, syncnet=expert)
            res |= talking_motion(model, clips)
        label = model.weights_label
        if label in rows:  # the same weights given twice: a row each
            label = f"{label} ({sum(k.startswith(label) for k in rows) + 1})"
        scored = res.pop("scored people")
        faces[label] = res.pop("first faces")
        per_item[label] = res.pop("per item")
        rows[label] = res
    names = list(rows)
    for name in names[1:]:
        a, b = per_item[names[0]], per_item[name]
        row = {}
        for key in PAIRED:
            if len(a[key]) == len(b[key]):
                row[key], row[f"{key} ±"] = paired_difference(a[key], b[key])
        rows[f"Δ {name} − {names[0]}"] = row
    if clips:  # the real talking clips' own motion, the range `talk`'s should fall in
        rows[f"real talking clips ({len(clips)})"] = real_motion(clips) | (
            real_sync(expert, clips) if expert is not None else {}
        )
    table = people_table({k: v for k, v in rows.items() if not k.startswith("Δ")})
    deltas = [f"| {k} | " + " | ".join(f"{key} {v[key]:+.3f} ± {v[key + ' ±']:.3f}" for key in PAIRED if key in v) + " |"
              for k, v in rows.items() if k.startswith("Δ")]  # fmt: skip
    typer.echo(table)
    for line in deltas:
        typer.echo(line)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(rows, indent=2, default=float) + "\n")
    if report:
        report.parent.mkdir(parents=True, exist_ok=True)
        first = rows[names[0]]
        head = (
            f"# s2tf eval-people: {first['people']} validation people, {first['clips']} clips scored "
            f"({len(first['refused clips'])} refused by the model)\n\n"
        )
        report.write_text(
            head + table + ("\n\nPaired differences (± bootstrap SE):\n\n" + "\n".join(deltas) if deltas else "") + "\n"
        )
    if grid_out:
        from ..images import png_bytes
        from ..outputs import write_bytes_atomic

        grid_out.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(grid_out, png_bytes(comparison_grid(scored, faces), {"s2tf:synthetic": "true"}))
        err.print(f"grid: {grid_out} (top row: the speakers' photos; then one row per weights: {', '.join(faces)})")


def _sync_expert(folder: Path, talking: Path | None):
    """The expert, loaded before any model is scored: a wrong folder fails first."""
    from ..evaluation.syncnet import SyncNet
    from .eval import checked_expert_folder

    if talking is None:
        raise UsageError("--syncnet scores the --talking clips: give --talking too")
    folder = checked_expert_folder(folder)
    try:
        return SyncNet.load(folder)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
