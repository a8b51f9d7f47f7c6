"""A stored run as one self-contained HTML file, to hand out: the settings, the headline,
both score charts, who sees what, the remedies measured, and one round's walkthrough.

Invariants:
- It opens offline: plotly.js is inlined once, the style is inline, and no element loads
  anything (no src or href points outside the file).
- Every number and sentence comes from the stored run's events, folded as a live session
  folds them, through the same functions the pages use (`fedviz.report.headline`,
  `fedviz.report.charts`, `fedviz.story.visibility`, `fedviz.story.walkthrough`): the
  handout says what the pages say, in the same words. Nothing is re-run.
- All text is HTML-escaped.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path

import numpy as np
import plotly.io as pio

from fedviz import __version__
from fedviz.config import Config
from fedviz.privacy.attacks import difference_errors
from fedviz.report.charts import mse_figure, y_range_for
from fedviz.report.estimate import human_duration
from fedviz.report.headline import Headline, headline
from fedviz.report.text import describe, setting_rows
from fedviz.store.runs import Folded, StoredRun
from fedviz.story import visibility
from fedviz.story import walkthrough as walk

ANSWERS = {True: "yes", False: "no", None: "depends"}
CHARTS = {"local": "Local training: each hospital alone", "federated": "Federated training: encrypted ring"}
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 70rem; margin: 2rem auto;
       padding: 0 1rem; color: #1f2937; line-height: 1.45; }
h1 { font-size: 1.8rem; margin-bottom: 0.2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #e5e7eb; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.92rem; }
th, td { border: 1px solid #d1d5db; padding: 0.3rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f3f4f6; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: #6b7280; font-size: 0.9rem; }
.metrics { display: flex; flex-wrap: wrap; gap: 1rem; }
.metric { border: 1px solid #e5e7eb; border-radius: 0.5rem; padding: 0.5rem 0.8rem; min-width: 12rem; }
.metric .v { font-size: 1.6rem; font-weight: 600; } .metric .d { color: #6b7280; font-size: 0.9rem; }
.box { border-radius: 0.4rem; padding: 0.5rem 0.8rem; margin: 0.4rem 0; }
.holds { background: #eff6ff; } .learned { background: #ecfdf5; } .cannot { background: #fef2f2; }
.warn { background: #fffbeb; } .info { background: #f0f9ff; }
.step { border: 1px solid #e5e7eb; border-radius: 0.5rem; padding: 0.2rem 1rem 0.8rem; margin: 1rem 0; }
code { word-break: break-all; background: #f3f4f6; padding: 0.1rem 0.3rem; }
.charts > div { margin: 0.5rem 0 1.5rem; }
@media print { .step { break-inside: avoid; } }
"""


def handout(run: StoredRun) -> str:
    """The run as one HTML document (a few MB: plotly.js is inlined so it opens offline)."""
    folded = run.fold()
    config = run.config
    title = f"fedviz run {run.id}" + (f": {run.info.label}" if run.info.label else "")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        _p(
            f"{_status(run, folded)} · stored {run.info.created.astimezone():%Y-%m-%d %H:%M} · "
            f"{folded.record.engine} engine",
            "muted",
        ),
        _p(describe(config)),
        "<h2>Results</h2>",
        results(run, folded),
        charts(folded, config),
        "<h2>Settings</h2>",
        settings_table(run),
        "<h2>Who sees what</h2>",
        who_sees_what(config),
        "<h2>Remedies, measured</h2>",
        remedies(run, folded),
        "<h2>One federated round, step by step</h2>",
        walkthrough(folded),
        _p(
            f"Made by fedviz {escape(__version__)} from stored run {escape(run.id)}. This file is complete in "
            "itself: it loads nothing from the network.",
            "muted",
        ),
        "</body></html>",
    ]
    return "\n".join(parts)


def write_handout(run: StoredRun, path: Path | str) -> int:
    """Write the handout to `path` atomically (a partly written file never appears under its
    name); returns its size in bytes. Raises `OSError` if the folder cannot be written."""
    data = handout(run).encode("utf-8")
    target = Path(path)
    handle, temporary = tempfile.mkstemp(
        dir=target.parent or Path("."), prefix=".fedviz-handout-", suffix=".tmp"
    )
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return len(data)


# --------------------------------------------------------------------------- sections


def _status(run: StoredRun, folded: Folded) -> str:
    done = folded.record.federated
    if run.info.status == "finished":
        return "Finished"
    if run.info.status == "failed":
        return f"Failed after {len(done)} federated rounds: {run.info.error}"
    return f"Stopped after {len(done)} federated rounds"


def settings_table(run: StoredRun) -> str:
    out = _table(("Setting", "Value"), setting_rows(run.config))
    for source in run.info.sources:
        size = f"{source.bytes:,} bytes" if source.bytes is not None else "size unknown"
        out += _p(
            f"Data file ({source.role}): {source.name}, {size}"
            + (f", SHA-256 {source.sha256}" if source.sha256 else "")
            + ". Its rows are not in the run store nor in this file.",
            "muted",
        )
    return out


def page_headline(folded: Folded, config: Config) -> Headline | None:
    """The Training page's verdicts (None until the run finished)."""
    finished = folded.record.finished
    if finished is None:
        return None
    return headline(
        finished.local_mse,
        finished.federated_mse,
        4 if config.model == "logistic" else 2,
        [tuple(map(float, a)) for a in folded.observations.averages],
        config.learning_rate,
    )


def results(run: StoredRun, folded: Folded) -> str:
    record, config = folded.record, run.config
    finished = record.finished
    said = page_headline(folded, config)
    if finished is None or said is None:
        return _box(
            f"{_status(run, folded)}: no final results. The charts below show the rounds it completed.",
            "warn",
        )
    metric, digits, logistic = config.metric, said.digits, config.model == "logistic"
    count = len(finished.federated_mse)
    warm = config.warm_start
    pooled = record.pooled_comparable[-1] if record.pooled_comparable else finished.centralized_mse
    metrics = [
        (
            f"Federated test {metric}, mean of {count} hospitals",
            f"{said.mean_federated:.{digits}f}",
            "no change vs local"
            if said.change is None
            else f"{said.change:+.{digits}f} vs local ({'worse' if said.change > 0 else 'better'}: lower is better)",
        )
    ]
    metrics.append((said.best_title(count), f"{said.best_score:.{digits}f}", ""))
    if logistic and finished.federated_accuracy:
        metrics.append(("Best federated accuracy", f"{max(finished.federated_accuracy):.1%}", ""))
    metrics.append(
        ("Pooled data, same total rounds" if warm else "Pooled data, same rounds", f"{pooled:.{digits}f}", "")
    )
    metrics.append(
        (
            "Scikit-learn logistic fit" if logistic else "Least-squares optimum",
            f"{finished.optimum_mse:.{digits}f}",
            "",
        )
    )
    seconds = run.info.timing.seconds or finished.timings.total
    metrics.append(("Run time", human_duration(seconds), ""))
    out = ['<div class="metrics">']
    for name, value, delta in metrics:
        out.append(
            f'<div class="metric"><div>{escape(name)}</div><div class="v">{escape(value)}</div>'
            + (f'<div class="d">{escape(delta)}</div>' if delta else "")
            + "</div>"
        )
    out.append("</div>")
    if said.worse_pct:
        lowest = max(pct for _, pct in said.worse_pct)
        names = [f"Hospital {k}" for k, _ in said.worse_pct]
        cause = (
            " The cause is differential privacy's noise: a DP result varies from run to run."
            if config.dp_epsilon is not None
            else " Their own data happened to suit the test patients better than the average step does."
        )
        out.append(
            _box(
                f"Federation made {len(names)} of {count} hospitals worse on the test set (by up to "
                f"{lowest:.{1 if lowest >= 0.1 else 3}f} %): "
                + ", ".join(names[:6])
                + (f" and {len(names) - 6} more" if len(names) > 6 else "")
                + "."
                + cause,
                "warn",
            )
        )
    elif said.unchanged is not None:
        out.append(
            _box(
                f"Federation changed no hospital's test {metric} by as much as the last digit shown "
                f"(±{said.tolerance:.{digits + 1}f}): {said.unchanged}.",
                "info",
            )
        )
    rows = []
    for row, effect in zip(record.table(), said.effects, strict=True):
        same = effect == "no change"
        local, fed = row["local_mse"], row["federated_mse"]
        improvement = 0.0 if same else row["improvement"]
        pct = 0.0 if same else (100 * improvement / abs(local) if local else float("nan"))
        rows.append(
            (
                row["hospital"],
                str(row["patients"]),
                f"{local:.{digits}f}",
                f"{fed:.{digits}f}",
                f"{improvement:.{digits}f}",
                f"{pct:.1f}",
                effect,
            )
        )
    out.append(
        _table(
            (
                "Hospital",
                "Patients",
                f"Local {metric}",
                f"Federated {metric}",
                "Improvement",
                "Improvement %",
                "Federation made it",
            ),
            rows,
            numeric=range(1, 6),
        )
    )
    t = finished.timings
    out.append(
        _p(
            f"{describe(config)} · keygen {t.keygen:.3f} s, encrypt {t.encrypt:.3f} s, add {t.add:.3f} s, "
            f"decrypt {t.decrypt:.3f} s · {finished.bytes_per_round:,} bytes of ciphertext per round",
            "muted",
        )
    )
    return "\n".join(out)


def charts(folded: Folded, config: Config) -> str:
    """Both score charts on one y range, as the Training page draws them (plotly.js inlined once)."""
    record = folded.record
    pooled_after = record.reference.continued_mse if record.reference is not None else ()
    optimum_label = "scikit-learn logistic fit" if config.model == "logistic" else "least-squares optimum"
    yr = y_range_for(
        *record.local,
        record.centralized,
        pooled_after,
        [record.optimum] if record.optimum is not None else [],
        growing=record.federated,
    )
    out = ['<div class="charts">']
    for i, (phase, title) in enumerate(CHARTS.items()):
        history = record.local if phase == "local" else record.federated
        continued = phase == "federated" and bool(pooled_after)
        figure = mse_figure(
            title,
            record.names,
            history,
            config.rounds,
            pooled_after if continued else record.centralized,
            record.optimum,
            yr,
            config.metric,
            optimum_label,
            "pooled data, GD continued (same total rounds)" if continued else "pooled data, plaintext GD",
            config.rounds + 1 if continued else 1,
        )
        figure.update_layout(margin={"l": 80, "r": 20, "t": 50, "b": 60})  # room for the axes' numbers
        html = pio.to_html(
            figure,
            include_plotlyjs=i == 0,
            full_html=False,
            config={"displaylogo": False, "displayModeBar": False, "responsive": True},
        )
        out.append(f"<div>{html}</div>")
    out.append("</div>")
    return "\n".join(out)


def who_sees_what(config: Config) -> str:
    """The Walkthrough page's table: each party alone, from the privacy rules."""
    n = config.hospitals
    rows = visibility.table(n, noisy=config.dp_epsilon is not None)
    body = [(row.party, *(f"{ANSWERS[cell.sees]} — {cell.why}" for cell in row.cells)) for row in rows]
    caption = f"{n} hospitals, each party alone (nobody colluding). " + (
        "With 2 hospitals the broadcast alone exposes each one's gradient to the other."
        if n == 2
        else "Coalitions, the aggregate's own leak and the remedies are on the Privacy page."
    )
    return _table(("party", *visibility.COLUMNS), body) + _p(caption, "muted")


def remedies(run: StoredRun, folded: Folded) -> str:
    """What this run applied and what its own messages give away, then the remedies lab's
    measured table when one was stored with the run."""
    config, record, obs = run.config, folded.record, folded.observations
    out = []
    applied = config.remedies
    out.append(_p("This run's remedies: " + (", ".join(applied) if applied else "none") + "."))
    if record.budget is not None:
        b = record.budget
        out.append(
            _box(
                f"Differential privacy ε = {b.epsilon:g}, δ = {b.delta:g} over {b.rounds} federated rounds: each "
                f"patient's gradient clipped to {b.clip:g}, noise multiplier {b.noise_multiplier:.3g}. Against k "
                "colluding hospitals (who subtract their own noise shares): "
                + ", ".join(f"k = {k}: ε = {e:.3g}" for k, e in b.coalition_epsilons)
                + ".",
                "info",
            )
        )
    if record.masks is not None:
        m = record.masks
        out.append(
            _box(
                f"Pairwise masks from {m.pairs} agreed pair seed{'s' if m.pairs != 1 else ''} "
                f"({m.public_bytes:,} public bytes, {m.seconds:.3f} s): every partial sum on the ring decrypts to "
                "noise, while the total is exactly what it would be without masks.",
                "info",
            )
        )
    if obs.rounds and len(obs.sent) == obs.rounds:
        out.append(_difference(config, obs.hospitals, float(np.max(difference_errors(obs))), obs.rounds))
    if run.remedies:
        columns = list(run.remedies[0])
        out.append("<h3>Threats × remedies on this run's settings</h3>")
        out.append(
            _table(
                tuple(c or "" for c in columns), [tuple(r.get(c, "") for c in columns) for r in run.remedies]
            )
        )
        out.append(
            _p(
                "“Recovered” means the attack gets the hospital's true gradient to rounding (the XᵀX fit: within "
                "1 %). Under DP the attacks still read exactly what a hospital sent, but that is its clipped "
                "gradient plus noise, so against its true gradient they are off by about the noise. Each remedy "
                "was applied in its own real run of these settings and the attacks re-run on what it produced.",
                "muted",
            )
        )
    else:
        out.append(
            _p(
                "The Privacy page's remedies lab (each remedy applied in its own real run, the attacks re-run on "
                "it) was not measured for this run before it was stored.",
                "muted",
            )
        )
    return "\n".join(out)


def _difference(config: Config, n: int, error: float, rounds: int) -> str:
    """The difference attack measured on the run's own rounds (the Privacy page's first lesson)."""
    noisy = config.dp_epsilon is not None
    over = f"over its {rounds} federated round{'s' if rounds != 1 else ''}"
    if n == 2:
        text = (
            f"Measured on this run: Hospital 1 computes 2·ā − g₁ and gets what Hospital 2 sent exactly (largest "
            f"difference {error:.1e} {over})"
            + (
                ": its noised gradient; only the noise protects."
                if noisy
                else ": the ring hides nothing here."
            )
        )
        return _box(text, "warn")
    return _box(
        f"Measured on this run: Hospital 1 computes {n}·ā − g₁ and recovers only the sum of what the other "
        f"{n - 1} sent (largest difference {error:.1e} {over}); many different splits fit that sum, so no single "
        "hospital's gradient follows, as long as nobody colludes.",
        "info",
    )


def walkthrough(folded: Folded) -> str:
    """The Walkthrough page's steps for the first round the transcript kept."""
    kept = walk.kept_rounds(folded.transcript)
    try:
        view = walk.round_view(folded.record, folded.transcript, folded.observations, kept[0])
    except (KeyError, IndexError):
        return _p("No federated round of this run was completed with its messages kept: nothing to tell.")
    stages = walk.outline(view)
    out = [
        _p(
            f"Round {view.round} of {view.config.rounds}, with this run's own keys, ciphertexts, gradients and "
            f"averages: who acts, what it holds, learns and cannot learn ({len(stages)} steps)."
        )
    ]
    for index, stage in enumerate(stages, start=1):
        step = walk.step(view, stage)
        out.append('<div class="step">')
        out.append(f"<h3>Step {index} of {len(stages)} · {escape(stage.label)}: {escape(step.title)}</h3>")
        out.append(_p(f"Who acts: {step.actor}"))
        out.append(_box(f"Holds: {step.holds}", "holds"))
        out.append(_box(f"Has just learned: {step.learned}", "learned"))
        out.append(_box(f"Cannot learn: {step.cannot}", "cannot"))
        out.append(_p(step.does))
        if step.facts:
            out.append(_table(tuple(k for k, _ in step.facts), [tuple(v for _, v in step.facts)]))
        if step.ciphertext is not None:
            out.append(
                _p("What travelled (shortened):", "muted") + f"<p><code>{escape(step.ciphertext)}</code></p>"
            )
        if step.vectors:
            header = ("feature", *(name for name, _ in step.vectors))
            body = [
                (feature, *(walk.fmt(values[i]) for _, values in step.vectors))
                for i, feature in enumerate(view.features)
            ]
            out.append(_table(header, body, numeric=range(1, len(header))))
        if step.mse:
            metric = view.metric
            body = [
                (
                    m.hospital,
                    walk.fmt_mse(m.before, metric),
                    walk.fmt_mse(m.after, metric),
                    "—" if m.before is None else walk.fmt_mse(m.after - m.before, metric),
                )
                for m in step.mse
            ]
            out.append(
                _table(
                    ("hospital", f"test {metric} before", f"test {metric} after", "change"),
                    body,
                    numeric=range(1, 4),
                )
            )
        out.append("</div>")
    return "\n".join(out)


# --------------------------------------------------------------------------- html


def _p(text: str, css: str = "") -> str:
    return f'<p class="{css}">{escape(text)}</p>' if css else f"<p>{escape(text)}</p>"


def _box(text: str, css: str) -> str:
    return f'<div class="box {css}">{escape(text)}</div>'


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], numeric: Iterable[int] = ()) -> str:
    right = set(numeric)
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{escape(str(v))}</td>' if i in right else f"<td>{escape(str(v))}</td>"
            for i, v in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
