"""Options several `osm` verbs share."""

from __future__ import annotations

from pathlib import Path

import click

STATE_DIR = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default="/var/lib/osm-local",
    show_default=True,
    envvar="OSM_LOCAL_STATE_DIR",
    help="where the local mesh keeps its state (a verb reads the local mesh when one runs there)",
)
