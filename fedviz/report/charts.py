"""Plotly figures of a run, built from plain data (no Streamlit here, so tests can read them).

Colours: one fixed colour per hospital on every chart; references in grey, dotted for the
pooled-data descent and dashed for the least-squares optimum.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def mse_figure(
    title: str,
    names: Sequence[str],
    history: Sequence[Sequence[float]],
    rounds: int,
    centralized: Sequence[float] = (),
    optimum: float | None = None,
    y_range: tuple[float, float] | None = None,
) -> go.Figure:
    """Test MSE per hospital per round (one line each) with the plaintext reference lines.

    `history[r][i]` is hospital i's MSE after round r+1; the x axis spans all `rounds` so the
    chart grows into a fixed frame while a run is live.
    """
    fig = go.Figure()
    x = list(range(1, len(history) + 1))
    show_legend = len(names) <= 10
    for i, name in enumerate(names):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=[row[i] for row in history],
                name=name,
                mode="lines",
                line={"color": colour(i), "width": 2},
                showlegend=show_legend,
                hovertemplate=f"{name}<br>round %{{x}}<br>MSE %{{y:.2f}}<extra></extra>",
            )
        )
    if centralized:
        fig.add_trace(
            go.Scatter(
                x=list(range(1, len(centralized) + 1)),
                y=list(centralized),
                name="pooled data, plaintext GD",
                mode="lines",
                line={"color": REFERENCE, "dash": "dot", "width": 2},
                hovertemplate="pooled GD (no privacy)<br>round %{x}<br>MSE %{y:.2f}<extra></extra>",
            )
        )
    if optimum is not None:
        fig.add_trace(
            go.Scatter(
                x=[1, rounds],
                y=[optimum, optimum],
                name="least-squares optimum",
                mode="lines",
                line={"color": REFERENCE, "dash": "dash", "width": 1.5},
                hovertemplate="least-squares optimum<br>MSE %{y:.2f}<extra></extra>",
            )
        )
    fig.update_layout(
        title={"text": title, "font": {"size": 16}},
        xaxis={"title": "round", "range": [1, max(rounds, 2)]},
        yaxis={"title": "test MSE", "range": list(y_range) if y_range else None},
        legend={"orientation": "h", "y": -0.25},
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        height=380,
        uirevision=title,  # zoom and legend clicks survive live updates
    )
    return fig


def y_range_for(*series: Sequence[float]) -> tuple[float, float]:
    """A common y range for the local and federated charts so they compare at a glance."""
    values = np.array([v for s in series for v in s if np.isfinite(v)] or [0.0, 1.0])
    low, high = float(values.min()), float(np.percentile(values, 99))
    pad = 0.05 * (high - low or 1.0)
    return low - pad, high + pad


def split_figure(names: Sequence[str], targets: Sequence[np.ndarray], test_targets: np.ndarray) -> go.Figure:
    """Each hospital's disease-progression targets beside the test set's (box per group)."""
    fig = go.Figure()
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
        yaxis={"title": "disease progression after one year"},
        showlegend=False,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        height=340,
    )
    return fig


def empty_figure(title: str, rounds: int, note: str = "no run yet") -> go.Figure:
    """The frame a chart will grow into, before any data (also loads plotly.js early)."""
    fig = mse_figure(title, [], [], rounds)
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
