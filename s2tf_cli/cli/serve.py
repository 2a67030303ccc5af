"""`s2tf serve`: start the local web page (thin, like cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import UsageError
from .common import IMAGE_SUFFIXES, DeviceOpt, VerboseOpt, WeightsOpt, _load, _setup_logging, app, err, handle_errors

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@app.command()
@handle_errors
def serve(
    host: Annotated[
        str, typer.Option("--host", help="Address to bind; the default is this machine only.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 7860,
    gallery: Annotated[Path | None, typer.Option("--gallery", "-g", help="Face folder that Retrieve ranks.")] = None,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", help="Largest uploaded file.")] = 20.0,
    max_seconds: Annotated[float, typer.Option("--max-seconds", help="Longest voice clip accepted.")] = 60.0,
    queue: Annotated[int, typer.Option("--queue", help="Jobs waiting or running at most; more are told to retry.")] = 8,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    verbose: VerboseOpt = False,
) -> None:
    """A local web page: record or upload a voice, see the face, watch it talk, rank your gallery."""
    _setup_logging(verbose)
    try:
        import uvicorn

        from ..web.app import ServeLimits, create_app
    except ImportError as exc:
        raise UsageError(f"`s2tf serve` needs the web extra: pip install 's2tf[web]' ({exc.name} is missing)") from None
    if not 0 < port < 65536:
        raise UsageError(f"--port must be between 1 and 65535, not {port}")
    if min(max_upload_mb, max_seconds, queue) <= 0:
        raise UsageError("--max-upload-mb, --max-seconds and --queue must be positive")
    files: list[Path] = []
    if gallery is not None:
        if not gallery.is_dir():
            raise UsageError(f"{gallery}: no such folder")
        files = sorted(p for p in gallery.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise UsageError(f"{gallery}: no image files found")
    if host not in LOOPBACK:
        err.print(f"[bold yellow]warning:[/] serving on {host}: anyone who can reach this machine can use the page "
                  "and your gallery", highlight=False)  # fmt: skip
    model = _load(weights, device)
    app_ = create_app(model, ServeLimits(max_upload_mb=max_upload_mb, max_seconds=max_seconds, queue=queue), files)
    err.print(f"s2tf serving on http://{host}:{port} (Ctrl+C stops it)")
    uvicorn.run(app_, host=host, port=port, log_level="info" if verbose else "warning")
