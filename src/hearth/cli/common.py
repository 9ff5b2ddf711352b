"""What every command shares: where output goes, and the options they all take."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

out = Console()
err = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar="HEARTH_DATA_DIR", help="State folder [default: ./.hearth]"),
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
