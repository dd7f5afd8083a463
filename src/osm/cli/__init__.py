"""The `osm` command-line interface."""
