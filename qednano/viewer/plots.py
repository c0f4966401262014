"""Line charts of training metrics as inline SVG, drawn on the server (no script, no CDN).

One chart per metric against the step; reward metrics first, since they are what a GRPO run
is read by. Every number written on a chart is computed from `metrics.jsonl`.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

WIDTH, HEIGHT = 420, 200
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 24, 30
SKIP = {"step", "epoch", "global_step"}


@dataclass
class Series:
    name: str
    points: list[tuple[float, float]]


def metric_series(rows: list[dict]) -> list[Series]:
    """Every numeric metric logged at two or more steps, reward metrics first."""
    found: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        step = row.get("step")
        if not isinstance(step, (int, float)):
            continue
        for name, value in row.items():
            if name in SKIP or isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            found.setdefault(name, []).append((float(step), float(value)))
    series = [Series(name, sorted(points)) for name, points in found.items() if len(points) >= 2]
    return sorted(series, key=lambda s: ("reward" not in s.name, s.name))


def ticks(low: float, high: float) -> list[float]:
    if high == low:
        return [low]
    return [low + (high - low) * i / 4 for i in range(5)]


def svg_chart(series: Series) -> str:
    xs = [x for x, _ in series.points]
    ys = [y for _, y in series.points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if y0 == y1:  # a flat line still needs a visible band
        y0, y1 = y0 - 0.5, y1 + 0.5
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (0 if x1 == x0 else (x - x0) / (x1 - x0) * plot_w)

    def py(y: float) -> float:
        return TOP + plot_h - (y - y0) / (y1 - y0) * plot_h

    path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in series.points)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'xmlns="http://www.w3.org/2000/svg" data-metric="{html.escape(series.name)}">',
        f'<text x="{LEFT}" y="16" class="title">{html.escape(series.name)}</text>',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" class="axis"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" class="axis"/>',
    ]
    for y in ticks(y0, y1):
        parts.append(f'<text x="{LEFT - 4}" y="{py(y) + 4:.1f}" class="tick" text-anchor="end">{y:.3g}</text>')
        parts.append(f'<line x1="{LEFT}" y1="{py(y):.1f}" x2="{WIDTH - RIGHT}" y2="{py(y):.1f}" class="grid"/>')
    for x in ticks(x0, x1):
        parts.append(f'<text x="{px(x):.1f}" y="{HEIGHT - 10}" class="tick" text-anchor="middle">{x:.4g}</text>')
    parts.append(f'<polyline points="{path}" class="line"/>')
    for x, y in series.points:
        parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2" class="dot"><title>step {x:g}: {y:.4g}</title></circle>')
    parts.append("</svg>")
    return "\n".join(parts)
