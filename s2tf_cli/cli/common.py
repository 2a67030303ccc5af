"""What every command module shares: the Typer app, its options, logging, progress bars and the one-line
error handling. Command modules import this and nothing above it."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from .. import __version__
from ..errors import S2TFError, UsageError, missing_dependency

app = typer.Typer(
    name="s2tf",
    help="Picture a person, and make them talk, from a clip of their speech (Speech2Talking-Face). "
    "Outputs are estimates, never identifications, and are stamped as synthetic.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)

err = Console(stderr=True)
log = logging.getLogger("s2tf_cli")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".jfif", ".pgm", ".ppm"}

WeightsOpt = Annotated[
    str | None,
    typer.Option(
        "--weights", "-w", envvar="S2TF_WEIGHTS", help="Registry name, Hub id org/name[@revision], or a folder."
    ),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]
JsonOutOpt = Annotated[Path | None, typer.Option("--json", help="Write every figure as JSON here.")]
ReportOpt = Annotated[Path | None, typer.Option("--report", help="Write the table as Markdown here.")]


def sources_and_output(folders: list[Path], what: str) -> tuple[list[Path], Path]:
    """`data` commands' arguments: input folders, then the output folder last."""
    if len(folders) < 2:
        raise UsageError(f"give at least one {what} folder and then the output folder")
    *sources, out = folders
    return sources, out


PrecisionOpt = Annotated[
    str, typer.Option("--precision", help="auto (bf16 where the CPU/GPU has it natively), fp32 or bf16.")
]
CacheOpt = Annotated[Path | None, typer.Option("--cache-dir", help="Hugging Face cache folder.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Vary the sample; omit for the deterministic estimate.")]
PoseOpt = Annotated[Path | None, typer.Option("--pose", help="Reference face image whose head pose is kept.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log more detail to stderr.")]


class _LevelFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LevelFormatter())
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler], force=True)


def handle_errors(fn: Callable) -> Callable:
    """Turn user errors into one line on stderr and a documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except S2TFError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:  # a bug, not a user error: one line, the traceback only with --verbose
            missing = missing_dependency(exc) if isinstance(exc, ModuleNotFoundError) else None
            if missing is not None:  # an optional package: the extra to install
                err.print(f"[bold red]error:[/] {escape(str(missing))}", highlight=False, markup=True, soft_wrap=True)
                raise typer.Exit(missing.exit_code) from None
            if logging.getLogger().isEnabledFor(logging.INFO):
                err.print_exception()
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            err.print(
                f"[bold red]error:[/] unexpected {type(exc).__name__}: {escape(first)} (rerun with --verbose for details)",
                highlight=False, markup=True, soft_wrap=True,
            )  # fmt: skip
            raise typer.Exit(1) from None

    return wrapper


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    if not err.is_terminal:  # a log file: rich would draw nothing (and end with a blank line)
        from ..progress import LogProgress

        return LogProgress(err)
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=err, transient=True,
    )  # fmt: skip


def _load(weights, device: str, cache_dir: Path | None = None, precision: str = "auto"):
    """`weights`: what --weights said, or an already resolved `WeightsSource`."""
    from ..pipeline import S2TF

    with err.status("loading model", spinner="dots"):
        return S2TF.from_pretrained(weights, device=device, cache_dir=cache_dir, precision=precision)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"s2tf {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    pass
