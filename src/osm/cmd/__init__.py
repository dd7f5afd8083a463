"""Entry points: wiring only."""
