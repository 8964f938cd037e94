"""Server-drawn SVG bar charts: geometry here, markup in the template.

No script and no chart library: each bar is a ``<rect>`` with a ``<title>``
(its number on hover and for screen readers), colours come from CSS classes,
and the same numbers are in the table beneath.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from django.utils.safestring import SafeString

# A small drawing scaled to its box (300–520 px wide): labels drawn at 13
# units stay at least 11 px on a phone and under 17 px on a wide screen.
WIDTH, HEIGHT = 400, 200
LEFT, RIGHT, TOP, BOTTOM = 36, 6, 10, 24


@dataclass
class Bar:
    x: float
    y: float
    w: float
    h: float
    css: str
    title: str


@dataclass
class Label:
    x: float
    y: float
    text: str
    anchor: str = "middle"


@dataclass
class Chart:
    title: str
    description: str
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bars: list[Bar] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    gridlines: list[float] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)  # (css, name)
    empty: bool = True

    @property
    def bars_html(self) -> SafeString:
        """The bars as markup, escaped: hundreds of them render faster here
        than through the template language (a 90-day range has 720)."""
        return SafeString(
            "".join(
                f'<rect class="{escape(b.css)}" x="{b.x}" y="{b.y}" width="{b.w}" '
                f'height="{b.h}"><title>{escape(b.title)}</title></rect>'
                for b in self.bars
            )
        )


def _nice_max(value: float) -> int:
    """A round top for the axis, at least ``value``."""
    if value <= 5:
        return 5
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        top = step * magnitude
        if top >= value:
            return int(top)
    return int(10 * magnitude)


def stacked(
    *,
    title: str,
    description: str,
    categories: list[str],
    series: list[tuple[str, str, list[int]]],
) -> Chart:
    """Bars per category, stacked by series ``(css class, name, values)``."""
    chart = Chart(title=title, description=description)
    totals = [sum(values[i] for _, _, values in series) for i in range(len(categories))]
    top = _nice_max(max(totals, default=0))
    chart.empty = not any(totals)
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    n = max(len(categories), 1)
    slot = plot_w / n
    gap = min(4.0, slot * 0.2)
    for fraction in (0, 0.5, 1):
        y = TOP + plot_h * (1 - fraction)
        chart.gridlines.append(round(y, 1))
        chart.labels.append(Label(LEFT - 4, y + 4, f"{top * fraction:g}", "end"))
    for i, category in enumerate(categories):
        base: float = TOP + plot_h
        x = LEFT + i * slot + gap / 2
        for css, name, values in series:
            value = values[i]
            if not value:
                continue
            h = plot_h * value / top
            base -= h
            chart.bars.append(
                Bar(
                    round(x, 1),
                    round(base, 1),
                    round(slot - gap, 1),
                    round(h, 1),
                    css,
                    f"{category} · {name}: {value}",
                )
            )
    # Category names under the axis: all if few, else the first, middle, last.
    picks = range(n) if n <= 7 else sorted({0, n // 2, n - 1})
    for i in picks:
        if i < len(categories):
            x, anchor = LEFT + (i + 0.5) * slot, "middle"
            if n > 7 and i == n - 1:  # the last one ends at the edge, not past it
                x, anchor = WIDTH - RIGHT, "end"
            chart.labels.append(Label(round(x, 1), HEIGHT - 7, categories[i], anchor))
    chart.legend = [(css, name) for css, name, values in series if any(values)]
    return chart
