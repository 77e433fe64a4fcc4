"""Server-side SVG charts for the sales reports: readable without JavaScript.

Why hand-written: the reports need one shape only (horizontal bars with their figures written
beside them), which is a few lines of geometry; a charting library would add a dependency and
its own CSS/JS. This module computes the geometry; `pipeline/report_chart.html` draws it with
Jinja's autoescaping, an accessible `<title>`/`<desc>` and a `<title>` per bar (a tooltip in
every browser). The same numbers are always in a table beside the chart, so the chart is an aid,
never the only source. Values in different currencies never share a chart (one per currency).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from decimal import Decimal

__all__ = ["Bar", "Chart", "bar_chart"]

WIDTH = 640
LABEL_WIDTH = 180
VALUE_WIDTH = 120
ROW_HEIGHT = 26
BAR_HEIGHT = 18
TOP = 8
PALETTE = ("#2f6fde", "#1f8a4c", "#e0b04f", "#c4352b", "#6fb3c9", "#8a5fd6")
_ids = itertools.count(1)


@dataclass
class Bar:
    label: str
    value: float
    text: str  # the value as shown (formatted for the user's locale)
    x: float = 0
    y: float = 0
    width: float = 0
    color: str = PALETTE[0]

    @property
    def label_y(self) -> float:
        return self.y + BAR_HEIGHT * 0.72


@dataclass
class Chart:
    title: str
    description: str
    bars: list[Bar] = field(default_factory=list)
    width: int = WIDTH
    height: int = 0
    label_width: int = LABEL_WIDTH
    ident: str = ""

    @property
    def empty(self) -> bool:
        return not self.bars


def _number(value: float | int | Decimal | None) -> float:
    return float(value) if value is not None else 0.0


def bar_chart(title: str, rows: list[tuple[str, float | int | Decimal | None, str]], *,
              description: str = "", color: str | None = None) -> Chart:
    """A horizontal bar per (label, value, shown text); bars scale to the largest value.

    Negative values draw as empty bars (reports only chart counts and amounts).
    """
    chart = Chart(title=title, description=description, ident=f"chart-{next(_ids)}")
    values = [max(_number(value), 0.0) for _label, value, _text in rows]
    top = max(values, default=0.0) or 1.0
    span = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    for index, ((label, _value, text), value) in enumerate(zip(rows, values, strict=True)):
        chart.bars.append(Bar(
            label=label if len(label) <= 28 else label[:27] + "…", value=value, text=text,
            x=LABEL_WIDTH, y=TOP + index * ROW_HEIGHT, width=round(span * value / top, 1),
            color=color or PALETTE[0]))
    chart.height = TOP * 2 + max(len(rows), 1) * ROW_HEIGHT
    return chart
