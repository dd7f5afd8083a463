"""`python -m osm.demo.bookthief`: the same loop as bookbuyer, deliberately left out of the SMI policies."""

from __future__ import annotations

from .client import main

if __name__ == "__main__":
    raise SystemExit(main("bookthief"))
