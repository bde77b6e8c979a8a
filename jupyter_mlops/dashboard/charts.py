"""Bokeh charts for the dashboard's pages: plain functions from numbers to figures.

Bokeh (a Panel dependency already) draws on a canvas: user strings (feature names,
run names, version labels) end up as canvas text or as hover fields, which Bokeh
escapes, never as HTML. Every chart has axes with labels, a hover tool, and says
in its title what it is of.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

PALETTE = ("#1565c0", "#ef6c00", "#2e7d32", "#6a1b9a", "#c62828", "#00838f", "#5d4037",
           "#ad1457")
REFERENCE = "#9e9e9e"
THRESHOLD = "#c62828"
TOOLS = "pan,wheel_zoom,box_zoom,reset,save"
# Traffic logged within this many seconds (a batch scoring job logs all its rows at one
# instant) is drawn on an hour around it: on its own span the time axis would read in
# microseconds ("319500us") with no date a reader can use.
SHORTEST_SPAN_S = 60.0
SHOWN_SPAN_S = 3600.0


def _figure(title: str, width: int, height: int, subtitle: str = "", **options: Any) -> Any:
    """A figure titled `title`, with `subtitle` in a smaller line under it (what the
    chart is of: the model version and release, which would not fit one line)."""
    from bokeh.models import Title
    from bokeh.plotting import figure

    fig = figure(title=None, width=width, height=height, tools=TOOLS,
                 sizing_mode="stretch_width", **options)
    fig.toolbar.logo = None
    if subtitle:  # laid out above the plot in order: the subtitle first, under the title
        fig.add_layout(Title(text=subtitle, text_font_size="11px",
                             text_font_style="italic"), "above")
    fig.add_layout(Title(text=title, text_font_size="13px"), "above")
    return fig


def time_series(title: str, at: Sequence[float], values: Sequence[float | None], *,
                y_label: str, versions: Sequence[str], subtitle: str = "",
                threshold: float | None = None,
                threshold_label: str = "", changes: Sequence[tuple[float, str]] = (),
                width: int = 640, height: int = 260) -> Any:
    """A line over time (`at` in epoch seconds) with a dashed threshold line and a
    vertical marker, labelled, where the model version changed (`changes`)."""
    from bokeh.models import ColumnDataSource, HoverTool, Label, Span

    options: dict[str, Any] = {}
    if at and max(at) - min(at) < SHORTEST_SPAN_S:
        middle = (max(at) + min(at)) / 2
        options["x_range"] = ((middle - SHOWN_SPAN_S / 2) * 1000.0,
                              (middle + SHOWN_SPAN_S / 2) * 1000.0)
    fig = _figure(title, width, height, subtitle, x_axis_type="datetime", **options)
    fig.xaxis.axis_label = "time"
    fig.yaxis.axis_label = y_label
    source = ColumnDataSource({"x": [a * 1000.0 for a in at],
                               "y": [float("nan") if v is None else v for v in values],
                               "version": list(versions)})
    fig.line("x", "y", source=source, line_width=2, color=PALETTE[0])
    fig.scatter("x", "y", source=source, size=5, color=PALETTE[0])
    fig.add_tools(HoverTool(tooltips=[("time", "@x{%F %T}"), (y_label, "@y{0.[000]}"),
                                      ("version", "@version")],
                            formatters={"@x": "datetime"}, mode="vline"))
    known = [v for v in values if v is not None and v == v]
    top = max(known, default=0.0) or threshold or 1.0
    fig.y_range.start = 0
    if threshold is not None and threshold <= 3 * top:  # far above: said, not drawn
        fig.y_range.end = max(top, threshold) * 1.15
        fig.add_layout(Span(location=threshold, dimension="width", line_color=THRESHOLD,
                            line_dash="dashed", line_width=2))
        fig.add_layout(Label(x=5, y=threshold, x_units="screen", text=threshold_label,
                             text_color=THRESHOLD, text_font_size="11px", y_offset=2))
    elif threshold is not None:
        fig.add_layout(Label(x=5, y=5, x_units="screen", y_units="screen",
                             text=f"{threshold_label}: far above", text_color=THRESHOLD,
                             text_font_size="11px"))
    for when, label in changes:
        fig.add_layout(Span(location=when * 1000.0, dimension="height", line_color="#555",
                            line_dash="dotted", line_width=2))
        fig.add_layout(Label(x=when * 1000.0, y=5, y_units="screen", text=label,
                             text_font_size="11px", x_offset=3))
    return fig


def distributions(title: str, labels: Sequence[str], reference: Sequence[float],
                  current: Sequence[float], *, edges: Sequence[float] | None = None,
                  subtitle: str = "", width: int = 640, height: int = 280) -> Any:
    """Reference and current proportions on one axis: histograms over the reference's
    bin `edges` (numeric), or bars side by side per category (`labels`)."""
    from bokeh.models import ColumnDataSource, HoverTool

    if edges is not None:  # drawn as densities: bins of the reference differ in width
        fig = _figure(title, width, height, subtitle)
        widths = [max(right - left, 1e-12) for left, right in zip(edges[:-1], edges[1:],
                                                                   strict=True)]
        source = ColumnDataSource({
            "left": list(edges[:-1]), "right": list(edges[1:]), "reference": list(reference),
            "current": list(current), "bin": list(labels),
            "reference_density": [r / w for r, w in zip(reference, widths, strict=True)],
            "current_density": [c / w for c, w in zip(current, widths, strict=True)]})
        fig.quad(left="left", right="right", bottom=0, top="reference_density",
                 source=source, fill_color=REFERENCE, fill_alpha=0.5, line_color=REFERENCE,
                 legend_label="reference")
        fig.quad(left="left", right="right", bottom=0, top="current_density", source=source,
                 fill_color=PALETTE[0], fill_alpha=0.35, line_color=PALETTE[0],
                 legend_label="current")
        fig.xaxis.axis_label = "value"
        fig.yaxis.axis_label = "share of rows per unit"
    else:
        from bokeh.transform import dodge

        fig = _figure(title, width, height, subtitle, x_range=list(labels))
        source = ColumnDataSource({"bin": list(labels), "reference": list(reference),
                                   "current": list(current)})
        fig.vbar(x=dodge("bin", -0.18, range=fig.x_range), top="reference", width=0.34,
                 source=source, color=REFERENCE, legend_label="reference")
        fig.vbar(x=dodge("bin", 0.18, range=fig.x_range), top="current", width=0.34,
                 source=source, color=PALETTE[0], legend_label="current")
        fig.xaxis.axis_label = "category"
        fig.xaxis.major_label_orientation = 0.6
        fig.yaxis.axis_label = "share of rows"
    fig.y_range.start = 0
    fig.legend.location = "top_right"
    fig.add_tools(HoverTool(tooltips=[("bin", "@bin"), ("reference", "@reference{0.000}"),
                                      ("current", "@current{0.000}")]))
    return fig


def reliability(title: str, predicted: Sequence[float], observed: Sequence[float],
                counts: Sequence[int], *, subtitle: str = "", width: int = 420,
                height: int = 320) -> Any:
    """The reliability curve (fraction positive by mean predicted probability) with the
    diagonal a perfectly calibrated model would follow."""
    from bokeh.models import ColumnDataSource, HoverTool

    fig = _figure(title, width, height, subtitle, x_range=(0, 1), y_range=(0, 1))
    fig.line([0, 1], [0, 1], line_dash="dashed", color=REFERENCE, legend_label="perfect")
    source = ColumnDataSource({"x": list(predicted), "y": list(observed), "n": list(counts)})
    fig.line("x", "y", source=source, line_width=2, color=PALETTE[0], legend_label="model")
    fig.scatter("x", "y", source=source, size=7, color=PALETTE[0])
    fig.add_tools(HoverTool(tooltips=[("mean predicted", "@x{0.000}"),
                                      ("fraction positive", "@y{0.000}"), ("rows", "@n")]))
    fig.xaxis.axis_label = "mean predicted probability"
    fig.yaxis.axis_label = "fraction positive"
    fig.legend.location = "top_left"
    return fig


def overlaid_lines(title: str, series: Sequence[tuple[str, Sequence[float], Sequence[float]]],
                   *, x_label: str = "step", y_label: str = "", width: int = 640,
                   height: int = 280) -> Any:
    """One line per (label, xs, ys), overlaid on one axis, with a legend."""
    from bokeh.models import ColumnDataSource, HoverTool

    fig = _figure(title, width, height)
    for index, (label, xs, ys) in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        source = ColumnDataSource({"x": list(xs), "y": list(ys), "run": [label] * len(xs)})
        fig.line("x", "y", source=source, line_width=2, color=colour, legend_label=label)
        fig.scatter("x", "y", source=source, size=4, color=colour)
    fig.add_tools(HoverTool(tooltips=[("run", "@run"), (x_label, "@x"),
                                      (y_label or "value", "@y{0.[0000]}")]))
    fig.xaxis.axis_label = x_label
    fig.yaxis.axis_label = y_label
    fig.legend.location = "top_right"
    fig.legend.click_policy = "hide"
    return fig


def parallel_coordinates(title: str, axes: Sequence[str], rows: Sequence[Sequence[Any]],
                         labels: Sequence[str], colour_by: Sequence[float | None], *,
                         colour_label: str, width: int = 900, height: int = 340) -> Any:
    """One polyline per run across `axes` (params, then the chosen metric last), each axis
    scaled to its own range (numbers) or spread evenly (text values), coloured by
    `colour_by`. Ticks at each axis name its range."""
    from bokeh.models import ColorBar, ColumnDataSource, HoverTool, LinearColorMapper

    columns = list(zip(*rows, strict=True)) if rows else [() for _ in axes]
    scaled_columns = [_scale(column) for column in columns]
    xs = [list(range(len(axes))) for _ in rows]
    ys = [[scaled_columns[a][r] for a in range(len(axes))] for r in range(len(rows))]
    known = [c for c in colour_by if c is not None]
    mapper = LinearColorMapper(palette="Viridis256", low=min(known, default=0.0),
                               high=max(known, default=1.0), nan_color=REFERENCE)
    source = ColumnDataSource({
        "xs": xs, "ys": ys, "run": list(labels),
        "colour": [float("nan") if c is None else c for c in colour_by],
        "values": [", ".join(f"{a}={v}" for a, v in zip(axes, row, strict=True))
                   for row in rows]})
    fig = _figure(title, width, height, x_range=(-0.3, len(axes) - 0.7), y_range=(-0.08, 1.12))
    fig.multi_line("xs", "ys", source=source, line_width=2, alpha=0.8,
                   color={"field": "colour", "transform": mapper},
                   hover_line_width=4, hover_line_alpha=1.0)
    for index in range(len(axes)):
        fig.line([index, index], [0, 1], color="#777", line_width=1)
    fig.xaxis.ticker = list(range(len(axes)))
    fig.xaxis.major_label_overrides = {i: f"{name}\n{_range_text(columns[i])}"
                                       for i, name in enumerate(axes)}
    fig.yaxis.visible = False
    fig.ygrid.visible = False
    fig.add_tools(HoverTool(tooltips=[("run", "@run"), ("", "@values")], line_policy="nearest"))
    fig.add_layout(ColorBar(color_mapper=mapper, title=colour_label, width=10), "right")
    return fig


def _scale(column: Sequence[Any]) -> list[float]:
    """Values to [0, 1]: numbers by their range, anything else by its sorted position."""
    numbers = [_number(v) for v in column]
    if all(n is not None for n in numbers):
        low, high = min(numbers), max(numbers)  # type: ignore[type-var]
        span = (high - low) or 1.0  # type: ignore[operator]
        return [0.5 if high == low else (n - low) / span for n in numbers]  # type: ignore
    distinct = sorted({str(v) for v in column})
    step = 1.0 / max(len(distinct) - 1, 1)
    return [distinct.index(str(v)) * step if len(distinct) > 1 else 0.5 for v in column]


def _range_text(column: Sequence[Any]) -> str:
    numbers = [_number(v) for v in column]
    if column and all(n is not None for n in numbers):
        return f"{min(numbers):.3g} to {max(numbers):.3g}"  # type: ignore[type-var]
    distinct = sorted({str(v) for v in column})
    return ", ".join(distinct[:4]) + (" ..." if len(distinct) > 4 else "")


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None
