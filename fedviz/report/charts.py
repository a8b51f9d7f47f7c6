"""Plotly figures of a run, built from plain data (no Streamlit here, so tests can read them).

Colours: one fixed colour per hospital on every chart; references in grey, dotted for the
pooled-data descent and dashed for the least-squares optimum.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from itertools import chain

import numpy as np
import plotly.graph_objects as go

PALETTE = (
    "#2563eb",
    "#d97706",
    "#059669",
    "#db2777",
    "#7c3aed",
    "#0891b2",
    "#65a30d",
    "#dc2626",
    "#4f46e5",
    "#ca8a04",
)
REFERENCE = "#6b7280"


LEGEND_BELOW: dict[str, object] = {"orientation": "h", "yref": "container", "y": 0, "yanchor": "bottom"}
"""A legend under the chart, anchored to the figure's bottom edge: the plot makes room for it
at any width (placed relative to the plot area instead, it landed on the x axis's title
after a window grew from 1280 to 1920 pixels and the legend lost a row)."""


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


MAX_POINTS = 250
"""Points per line at most: longer histories are thinned (first and last round always kept),
so a redraw costs the same for 50 rounds or 1000."""
BAND_ABOVE = 10
"""With more hospitals than this, one band (range and median) replaces a line each."""


def thin(length: int, max_points: int = MAX_POINTS) -> list[int]:
    """Indices 0..length-1 to draw: all of them when few, else evenly spread, ends included."""
    if length <= max_points:
        return list(range(length))
    step = (length - 1) / (max_points - 1)
    return sorted({round(i * step) for i in range(max_points)})


def mse_figure(
    title: str,
    names: Sequence[str],
    history: Sequence[Sequence[float]],
    rounds: int,
    centralized: Sequence[float] = (),
    optimum: float | None = None,
    y_range: tuple[float, float] | None = None,
    metric: str = "MSE",
    optimum_label: str = "least-squares optimum",
    centralized_label: str = "pooled data, plaintext GD",
    centralized_start: int = 1,
) -> go.Figure:
    """The test metric (MSE, or log-loss) per hospital per round with the plaintext reference
    lines.

    `history[r][i]` is hospital i's MSE after round r+1; the x axis spans all `rounds` so the
    chart grows into a fixed frame while a run is live. Up to `BAND_ABOVE` hospitals get a
    line each; more get one band (lowest to highest MSE) and the median line. At most
    `MAX_POINTS` points per trace are drawn.

    Built as a plain spec and wrapped without plotly's per-attribute validation: this chart
    is redrawn live for every watching session, and validation was three quarters of its cost
    (about 20 ms of the web server's Python lock per chart; now about 2 ms). The attributes
    are fixed here and checked by tests that read the spec.
    """
    keep = thin(len(history))
    digits = 2 if metric == "MSE" else 4
    value = f"{metric} %{{y:.{digits}f}}"
    x = [i + 1 for i in keep]
    rows = np.array([history[i] for i in keep], dtype=float).reshape(len(keep), len(names))
    traces: list[dict[str, object]] = []
    if len(names) <= BAND_ABOVE:
        for i, name in enumerate(names):
            traces.append(
                _line(
                    x,
                    rows[:, i].tolist(),
                    name,
                    {"color": colour(i), "width": 2},
                    f"{name}<br>round %{{x}}<br>{value}<extra></extra>",
                    mode="lines" if len(x) > 1 else "markers",  # one round: a dot, not nothing
                )
            )
    elif len(keep):
        with warnings.catch_warnings():  # a round where every value is NaN draws a gap
            warnings.simplefilter("ignore", RuntimeWarning)
            low, mid, high = (f(rows, axis=1).tolist() for f in (np.nanmin, np.nanmedian, np.nanmax))
        traces.append({**_line(x, high, "", {"width": 0}, None), "hoverinfo": "skip", "showlegend": False})
        traces.append(
            {
                **_line(x, low, f"range of {len(names)} hospitals", {"width": 0}, None),
                "fill": "tonexty",
                "fillcolor": "rgba(37, 99, 235, 0.18)",
                "hoverinfo": "skip",
            }
        )
        traces.append(
            _line(
                x,
                mid,
                "median hospital",
                {"color": colour(0), "width": 2},
                f"median hospital<br>round %{{x}}<br>{value}<extra></extra>",
            )
        )
    if centralized:
        ref = thin(len(centralized))
        traces.append(
            _line(
                [i + 1 for i in ref],
                [centralized[i] for i in ref],
                centralized_label,
                {"color": REFERENCE, "dash": "dot", "width": 2},
                f"{centralized_label} (no privacy)<br>its round %{{customdata}}<br>{value}<extra></extra>",
            )
            | {"customdata": [i + centralized_start for i in ref]}
        )
    if optimum is not None:
        traces.append(
            _line(
                [1, max(rounds, 2)],
                [optimum, optimum],
                optimum_label,
                {"color": REFERENCE, "dash": "dash", "width": 1.5},
                f"{optimum_label}<br>{value}<extra></extra>",
            )
        )
    layout = {
        "title": {"text": title, "font": {"size": 16}},
        "xaxis": {"title": {"text": "round"}, "range": [1, max(rounds, 2)], **round_ticks(rounds)},
        "yaxis": {"title": {"text": f"test {metric}"}, "range": list(y_range) if y_range else None},
        "legend": LEGEND_BELOW,
        "margin": {"l": 10, "r": 10, "t": 50, "b": 10},
        "height": 380,
        "uirevision": title,  # zoom and legend clicks survive live updates
        "meta": {"rounds_drawn": len(history)},
        "template": _TEMPLATE,
    }
    return go.Figure({"data": traces, "layout": layout}, _validate=False)


_TEMPLATE = go.layout.Template(go.Figure().layout.template).to_plotly_json()
"""Plotly's default template, as validated figures get it (a plain spec would not)."""


def _line(
    x: list[int],
    y: list[float],
    name: str,
    line: dict[str, object],
    hover: str | None,
    mode: str = "lines",
) -> dict[str, object]:
    trace: dict[str, object] = {"type": "scatter", "x": x, "y": y, "mode": mode, "line": line}
    if name:
        trace["name"] = name
    if hover is not None:
        trace["hovertemplate"] = hover
    return trace


def round_ticks(rounds: int) -> dict[str, object]:
    """Whole-number round ticks (a 1- or 2-round axis would otherwise show 1.2, 1.4, ...)."""
    if rounds <= 10:
        return {"tickmode": "linear", "tick0": 1, "dtick": 1}
    return {"tickformat": "d"}


def y_range_for(*series: Sequence[float], growing: Sequence[Sequence[float]] = ()) -> tuple[float, float]:
    """A common y range for the local and federated charts so they compare at a glance
    (the lowest value to the 99th percentile, padded; non-finite values ignored), widened to
    every finite value of the `growing` series (a live run's federated curves): as they grow
    the range can only widen, so a live chart's axis never shrinks under the viewer."""
    values = np.fromiter(chain.from_iterable(series), dtype=float)
    values = values[np.isfinite(values)]
    if not values.size:
        values = np.array([0.0, 1.0])
    # With many values the top 1 % (the first rounds' spike) would flatten the rest.
    top = float(np.percentile(values, 99)) if values.size >= 200 else float(values.max())
    low, high = float(values.min()), top
    extra = np.fromiter(chain.from_iterable(growing), dtype=float)
    extra = extra[np.isfinite(extra)]
    if extra.size:
        low, high = min(low, float(extra.min())), max(high, float(extra.max()))
    pad = 0.05 * (high - low or 1.0)
    return low - pad, high + pad


def split_figure(
    names: Sequence[str],
    targets: Sequence[np.ndarray],
    test_targets: np.ndarray,
    label: str = "disease progression after one year",
    classes: Sequence[str] = (),
) -> go.Figure:
    """Each hospital's targets beside the test set's: a box per group for a numeric target,
    the share of each class for a two-valued one."""
    fig = go.Figure()
    if classes:
        groups = [*names, "test set"]
        values = [*targets, test_targets]
        for c, name in enumerate(classes):
            fig.add_trace(
                go.Bar(
                    x=[f"{g} ({len(v)})" for g, v in zip(groups, values, strict=True)],
                    y=[float(np.mean(np.asarray(v) == c)) for v in values],
                    name=name,
                    marker_color=colour(c),
                    hovertemplate=f"{name}<br>%{{x}}<br>%{{y:.0%}} of its rows<extra></extra>",
                )
            )
        fig.update_layout(
            title={"text": "Each hospital's share of each class, and the test set's", "font": {"size": 14}},
            barmode="stack",
            yaxis={"title": f"share of rows by {label}", "tickformat": ".0%"},
            margin={"l": 10, "r": 10, "t": 30, "b": 10},
            height=340,
            legend=LEGEND_BELOW,
        )
        return fig
    for i, (name, y) in enumerate(zip(names, targets, strict=True)):
        fig.add_trace(
            go.Box(y=list(map(float, y)), name=f"{name} ({len(y)})", marker_color=colour(i), boxmean=True)
        )
    fig.add_trace(
        go.Box(
            y=list(map(float, test_targets)),
            name=f"test set ({len(test_targets)})",
            marker_color=REFERENCE,
            boxmean=True,
        )
    )
    fig.update_layout(
        title={"text": f"Each hospital's {label}, and the test set's", "font": {"size": 14}},
        yaxis={"title": label},
        showlegend=False,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        height=340,
    )
    return fig


def empty_figure(title: str, rounds: int, note: str = "no run yet", metric: str = "MSE") -> go.Figure:
    """The frame a chart will grow into, before any data (also loads plotly.js early)."""
    fig = mse_figure(title, [], [], rounds, metric=metric)
    fig.update_layout(
        yaxis={"showticklabels": False, "showgrid": False, "zeroline": False, "range": [0, 1]},
        annotations=[
            {
                "text": note,
                "x": 0.5,
                "y": 0.5,
                "xref": "paper",
                "yref": "paper",
                "showarrow": False,
                "font": {"size": 15, "color": REFERENCE},
            }
        ],
    )
    return fig
