"""A dependency-free SVG writer for the benchmark's bar charts.

One figure = a title and one or more side-by-side panels; a panel = horizontal bars, one per
row, with an optional range whisker (min-max over repetitions) and vertical reference lines
(a goal, or the physical limit). Colours: ringlb rows stand out, the no-proxy baseline is grey.
"""

import math
from html import escape

ROW_H = 22
LABEL_W = 130
PANEL_W = 300
GAP = 36
TOP = 58
FONT = "font-family='DejaVu Sans, Arial, sans-serif'"

COLOURS = {"ringlb": "#d9480f", "base": "#adb5bd", "peer": "#4c6ef5"}


def colour(kind):
    return COLOURS.get(kind, COLOURS["peer"])


def nice_step(v):
    """The smallest of 1, 2, 2.5, 5 × 10^k at or above v."""
    if v <= 0:
        return 1.0
    e = 1.0
    while e * 10 <= v:
        e *= 10
    while e > v:
        e /= 10
    for m in (1, 2, 2.5, 5, 10):
        if m * e >= v:
            return m * e
    return 10 * e


def axis(v):
    """(end, step) of an axis from 0 that holds v in about five round steps."""
    step = nice_step(v / 5)
    n = max(1, math.ceil(v / step - 1e-9))
    return n * step, step


def fmt_num(v):
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def figure(path, title, panels, note=""):
    """Write an SVG with `panels` side by side.

    panel: {"title": str, "rows": [(label, value, lo, hi, kind)], "refs": [(value, text)],
            "fmt": callable (optional)}; lo/hi may be None; kind in ringlb|base|peer.
    """
    nrows = max(len(p["rows"]) for p in panels)
    width = LABEL_W + len(panels) * (PANEL_W + GAP) + 20
    width = int(max(width, 20 + 5.8 * len(note)))
    height = TOP + nrows * ROW_H + 46 + (16 if note else 0)
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' {FONT} font-size='12'>",
        f"<rect width='{width}' height='{height}' fill='white'/>",
        f"<text x='10' y='20' font-size='15' font-weight='bold'>{escape(title)}</text>",
    ]
    labels = [r[0] for r in panels[0]["rows"]]
    for i, lab in enumerate(labels):
        y = TOP + i * ROW_H + ROW_H * 0.68
        out.append(f"<text x='{LABEL_W - 8}' y='{y:.1f}' text-anchor='end'>{escape(lab)}</text>")
    for pi, p in enumerate(panels):
        x0 = LABEL_W + pi * (PANEL_W + GAP)
        f = p.get("fmt", fmt_num)
        vals = [r[3] if r[3] is not None else r[1] for r in p["rows"] if r[1] is not None]
        vals += [v for v, _ in p.get("refs", [])]
        vmax, step = axis(max(vals) * 1.02 if vals else 1.0)
        sx = lambda v: x0 + PANEL_W * (v / vmax)
        out.append(f"<text x='{x0}' y='{TOP - 22}' font-weight='bold'>{escape(p['title'])}</text>")
        y_end = TOP + nrows * ROW_H
        for k in range(round(vmax / step) + 1):
            v = step * k
            x = sx(v)
            out.append(f"<line x1='{x:.1f}' y1='{TOP - 4}' x2='{x:.1f}' y2='{y_end}' stroke='#e9ecef'/>")
            out.append(f"<text x='{x:.1f}' y='{y_end + 14}' text-anchor='middle' fill='#495057' font-size='10'>{f(v) if k else '0'}</text>")
        for i, (lab, v, lo, hi, kind) in enumerate(p["rows"]):
            if v is None:
                continue
            y = TOP + i * ROW_H + 3
            h = ROW_H - 7
            out.append(f"<rect x='{x0}' y='{y}' width='{max(sx(v) - x0, 0.5):.1f}' height='{h}' fill='{colour(kind)}'><title>{escape(lab)}: {f(v)}</title></rect>")
            if lo is not None and hi is not None and hi > lo:
                ym = y + h / 2
                out.append(f"<line x1='{sx(lo):.1f}' y1='{ym}' x2='{sx(hi):.1f}' y2='{ym}' stroke='#212529'/>")
                for e in (lo, hi):
                    out.append(f"<line x1='{sx(e):.1f}' y1='{ym - 4}' x2='{sx(e):.1f}' y2='{ym + 4}' stroke='#212529'/>")
            tx = max(sx(v), sx(hi) if hi is not None else 0) + 4
            anchor = "start"
            if tx > x0 + PANEL_W - 40:
                tx, anchor = sx(v) - 4, "end"
                fill = "white"
            else:
                fill = "#212529"
            out.append(f"<text x='{tx:.1f}' y='{y + h * 0.8:.1f}' font-size='11' text-anchor='{anchor}' fill='{fill}'>{f(v)}</text>")
        for v, text in p.get("refs", []):
            x = sx(v)
            out.append(f"<line x1='{x:.1f}' y1='{TOP - 8}' x2='{x:.1f}' y2='{y_end}' stroke='#2b8a3e' stroke-width='1.5' stroke-dasharray='5,3'/>")
            out.append(f"<text x='{x:.1f}' y='{TOP - 10}' text-anchor='middle' fill='#2b8a3e' font-size='10'>{escape(text)}</text>")
        out.append(f"<text x='{x0 + PANEL_W / 2}' y='{y_end + 30}' text-anchor='middle' fill='#495057' font-size='11'>{escape(p.get('unit', ''))}</text>")
    if note:
        out.append(f"<text x='10' y='{height - 8}' fill='#495057' font-size='10'>{escape(note)}</text>")
    out.append("</svg>")
    with open(path, "w") as fh:
        fh.write("\n".join(out) + "\n")
