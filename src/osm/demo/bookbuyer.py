"""`python -m osm.demo.bookbuyer`: the authorized buyer (see `osm.demo.client`)."""

from __future__ import annotations

from .client import main

if __name__ == "__main__":
    raise SystemExit(main("bookbuyer"))
