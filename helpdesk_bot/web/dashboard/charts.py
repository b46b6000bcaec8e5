"""Charts as inline SVG, drawn on the server: no JavaScript, no CDN, readable in any browser."""

from __future__ import annotations

from html import escape

PALETTE = {"deflection": "#2f7d4f", "auto_send": "#3a6fb0", "good": "#2f7d4f", "bad": "#c2453d",
           "unjudged": "#c9a227", "escalated": "#9aa3ad", "bar": "#3a6fb0", "trend": "#3a6fb0"}


def line_chart(labels: list[str], series: list[tuple[str, list[float | None], str]], width: int = 720,
               height: int = 240, percent: bool = True, title: str = "") -> str:
    """Lines over time; values are shares (0..1) when `percent`."""
    left, right, top, bottom = 44, 12, 16, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = 1.0 if percent else max([v for _, vs, _ in series for v in vs if v is not None] + [1e-9])
    n = max(len(labels), 1)
    x = lambda i: left + (plot_w * (i / (n - 1)) if n > 1 else plot_w / 2)  # noqa: E731
    y = lambda v: top + plot_h * (1 - v / peak)  # noqa: E731
    parts = [_open(width, height, title)]
    for frac in (0, 0.25, 0.5, 0.75, 1):
        gy = top + plot_h * (1 - frac)
        label = f"{frac * 100:.0f}%" if percent else _short(frac * peak)
        parts.append(f'<line x1="{left}" y1="{gy:.1f}" x2="{width - right}" y2="{gy:.1f}" class="grid"/>'
                     f'<text x="{left - 6}" y="{gy + 4:.1f}" class="axis" text-anchor="end">{label}</text>')
    step = max(1, n // 8)
    for i, lab in enumerate(labels):
        if i % step == 0 or i == n - 1:
            parts.append(f'<text x="{x(i):.1f}" y="{height - 12}" class="axis" text-anchor="middle">{escape(lab)}</text>')
    for name, values, color in series:
        points = [(x(i), y(v)) for i, v in enumerate(values) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2.5"/>')
        for (px, py), v in zip(points, [v for v in values if v is not None]):
            shown = f"{v * 100:.0f}%" if percent else _short(v)
            parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="{color}"><title>{escape(name)}: {shown}</title></circle>')
    parts.append(_legend([(name, color) for name, _, color in series], left, 4))
    return "".join(parts) + "</svg>"


def stacked_bars(labels: list[str], stacks: list[tuple[str, list[int], str]], width: int = 720, height: int = 240,
                 title: str = "") -> str:
    left, right, top, bottom = 44, 12, 22, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(s[1][i] for s in stacks) for i in range(len(labels))]
    peak = max(totals + [1])
    n = max(len(labels), 1)
    slot = plot_w / n
    parts = [_open(width, height, title)]
    for frac in (0, 0.5, 1):
        gy = top + plot_h * (1 - frac)
        parts.append(f'<line x1="{left}" y1="{gy:.1f}" x2="{width - right}" y2="{gy:.1f}" class="grid"/>'
                     f'<text x="{left - 6}" y="{gy + 4:.1f}" class="axis" text-anchor="end">{_short(frac * peak)}</text>')
    for i, lab in enumerate(labels):
        base = top + plot_h
        bx = left + slot * i + slot * 0.15
        for name, values, color in stacks:
            h = plot_h * values[i] / peak
            if h > 0:
                base -= h
                parts.append(f'<rect x="{bx:.1f}" y="{base:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" fill="{color}">'
                             f'<title>{escape(lab)} · {escape(name)}: {values[i]}</title></rect>')
        parts.append(f'<text x="{left + slot * (i + 0.5):.1f}" y="{height - 12}" class="axis" text-anchor="middle">{escape(lab)}</text>')
    parts.append(_legend([(name, color) for name, _, color in stacks], left, 4))
    return "".join(parts) + "</svg>"


def hbars(items: list[tuple[str, float]], width: int = 480, title: str = "", color: str = PALETTE["bar"]) -> str:
    row, label_w = 24, 240
    height = max(row * len(items) + 8, 32)
    peak = max([v for _, v in items] + [1])
    parts = [_open(width, height, title)]
    if not items:
        parts.append(f'<text x="8" y="20" class="axis">nothing to show yet</text>')
    for i, (name, value) in enumerate(items):
        y0 = 4 + i * row
        w = (width - label_w - 40) * value / peak
        parts.append(f'<text x="{label_w - 8}" y="{y0 + 15}" class="axis" text-anchor="end">{escape(name)}</text>'
                     f'<rect x="{label_w}" y="{y0 + 3}" width="{max(w, 1):.1f}" height="{row - 8}" fill="{color}">'
                     f'<title>{escape(name)}: {_short(value)}</title></rect>'
                     f'<text x="{label_w + w + 6:.1f}" y="{y0 + 15}" class="axis">{_short(value)}</text>')
    return "".join(parts) + "</svg>"


def sparkline(values: list[int], width: int = 120, height: int = 28) -> str:
    peak = max(values + [1])
    n = max(len(values), 2)
    points = " ".join(f"{2 + (width - 4) * i / (n - 1):.1f},{height - 3 - (height - 6) * v / peak:.1f}"
                      for i, v in enumerate(values))
    return (f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="weekly tickets: {", ".join(map(str, values))}"><polyline points="{points}" fill="none" '
            f'stroke="{PALETTE["trend"]}" stroke-width="2"/></svg>')


def _open(width: int, height: int, title: str) -> str:
    return (f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
            f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>')


def _legend(entries: list[tuple[str, str]], x: int, y: int) -> str:
    parts, offset = [], x
    for name, color in entries:
        parts.append(f'<rect x="{offset}" y="{y}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{offset + 14}" y="{y + 9}" class="legend">{escape(name)}</text>')
        offset += 24 + 7 * len(name)
    return "".join(parts)


def _short(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.0f}" if float(value).is_integer() or value >= 10 else f"{value:.2f}"
