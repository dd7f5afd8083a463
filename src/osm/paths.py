"""Where the files installed with the package are: the demo and example manifests, the Helm chart."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
CHART = DATA / "charts" / "osm"
