"""Scale charts: B1 cold start and B4 memory against the number of proxies.

matplotlib is optional: it is imported lazily, and without it `plot` prints why and returns False.

Rows: `{"bench": "B1"|"B4", "mode": "smi"|"permissive", "xds": "sotw"|"delta", "n": int,
"seconds": float, "rss_mb": float, "mb_per_proxy": float}`; any key may be missing (rows without
`n` or without the plotted value are skipped).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SCALE_POINTS = (250, 500, 1000, 2000)
B1_TARGETS = {"smi": 10.0, "permissive": 20.0}  # seconds at 2000 proxies (bench/summary.py)
B4_TARGET_MB = 0.25
_STYLE = {"sotw": "-", "delta": "--"}
_MARKER = {"smi": "o", "permissive": "s"}
_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def series(
    rows: Iterable[dict[str, Any]], bench: str, key: str
) -> dict[tuple[str, str], list[tuple[int, float]]]:
    """{(mode, xds): [(n, value), ...] sorted by n} for the rows of `bench` that carry `key`."""
    out: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    for row in rows:
        if row.get("bench") != bench:
            continue
        n, value = _number(row.get("n")), _number(row.get(key))
        if n is None or value is None:
            continue
        out[(str(row.get("mode") or "-"), str(row.get("xds") or "-"))][int(n)] = value
    return {k: sorted(v.items()) for k, v in sorted(out.items())}


def _label(mode: str, xds: str) -> str:
    return f"{'SMI' if mode == 'smi' else mode} / {'SotW' if xds == 'sotw' else xds}"


def plot(results: list[dict[str, Any]], out_png: Path) -> bool:
    """Draw B1 (left) and B4 (right) against N into `out_png`; False when matplotlib is unavailable."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        print(f"plot skipped: matplotlib is not installed ({e})")
        return False

    b1 = series(results, "B1", "seconds")
    b4_mb = series(results, "B4", "mb_per_proxy")
    b4_rss = series(results, "B4", "rss_mb")

    keys = sorted({*b1, *b4_mb, *b4_rss})
    color = {k: _COLORS[i % len(_COLORS)] for i, k in enumerate(keys)}  # one colour per line across panels
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))

    def draw(
        ax: Any, lines: dict[tuple[str, str], list[tuple[int, float]]], prefix: str = "", **style: Any
    ) -> None:
        for (mode, xds), points in lines.items():
            xs, ys = zip(*points, strict=True)
            kw = {"linestyle": _STYLE.get(xds, ":"), **style}
            ax.plot(
                xs,
                ys,
                color=color[(mode, xds)],
                marker=_MARKER.get(mode, "^"),
                label=f"{prefix}{_label(mode, xds)}",
                **kw,
            )

    draw(left, b1)
    for mode, target in B1_TARGETS.items():
        if any(m == mode for m, _ in b1):
            left.axhline(target, color="grey", linewidth=0.8, linestyle=":")
            left.annotate(f"target {mode} {target:g} s", (SCALE_POINTS[0], target), fontsize=8, color="grey")
    left.set_title("B1 cold start (all proxies ACKed)")
    left.set_ylabel("seconds")

    twin = right.twinx()
    draw(right, b4_mb)
    draw(twin, b4_rss, "total RSS ", linestyle=":", alpha=0.5)
    if b4_mb:
        right.axhline(B4_TARGET_MB, color="grey", linewidth=0.8, linestyle=":")
    left.set_ylim(bottom=0)
    right.set_ylim(bottom=0)
    twin.set_ylim(bottom=0)
    right.set_title("B4 memory per proxy")
    right.set_ylabel("MB per proxy")
    twin.set_ylabel("total RSS (MB)")

    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xticks(SCALE_POINTS, [str(n) for n in SCALE_POINTS])
        ax.minorticks_off()
        ax.set_xlabel("proxies (N)")
        ax.grid(True, alpha=0.3)
    if b1:
        left.legend(fontsize=8)
    handles = right.get_legend_handles_labels()
    twin_handles = twin.get_legend_handles_labels()
    if handles[0] or twin_handles[0]:
        right.legend(handles[0] + twin_handles[0], handles[1] + twin_handles[1], fontsize=8)
    if not (b1 or b4_mb or b4_rss):
        fig.suptitle("no B1/B4 results")
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return True
