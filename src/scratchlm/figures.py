"""The report's figures (matplotlib, PNG): what pretraining bought, data-efficiency curves,
learning curves and confusion matrices. Each function draws one figure into `path` and returns
it; the report links them from Markdown and embeds them in HTML, and dvc.yaml declares the
folder as plots, so `dvc plots diff` shows them side by side across revisions."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from .methods import CONTROL, METHODS


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # no Software/date metadata: the same numbers give the same bytes
    fig.savefig(path, dpi=90, bbox_inches="tight", metadata={"Software": None})
    _plt().close(fig)
    return path


def _grid(n: int, width: float = 4.2, height: float = 3.2, columns: int = 3):
    """Panels in a grid whose layout engine keeps each panel's labels clear of its neighbours'."""
    plt = _plt()
    cols = min(n, columns)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, list(axes.flat)


def _below_above(rows: list[tuple]) -> list[list[float]]:
    """matplotlib's asymmetric error bars from (..., gain, low, high) rows (never negative: a
    percentile interval need not hold the point estimate)."""
    return [[max(0.0, r[-3] - r[-2]) for r in rows], [max(0.0, r[-1] - r[-3]) for r in rows]]


def gains(rows: list[tuple[str, str, str, float, float, float]], path: Path) -> Path:
    """Bars of (pretrained - scratch) on the main test metric with their 95% interval, one panel
    per task; a bar whose interval covers zero is grey. rows: (task, model, run, gain, low, high),
    in points."""
    tasks = list(dict.fromkeys(r[0] for r in rows))
    fig, axes = _grid(len(tasks), width=5.0)
    for ax, task in zip(axes, tasks):
        mine = [r for r in rows if r[0] == task]
        colors = ["tab:grey" if low <= 0 <= high else "tab:green" if gain > 0 else "tab:red"
                  for *_, gain, low, high in mine]
        ax.barh([f"{m}/{run}" for _, m, run, *_ in mine], [r[3] for r in mine], xerr=_below_above(mine), capsize=3,
                color=colors)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.invert_yaxis()
        ax.set_title(task)
        ax.set_xlabel("pretrained − scratch (points, 95% CI)")
    return _save(fig, path)


def share_gains(rows: list[tuple[str, str, float, float, float, float]], metric_names: dict, path: Path) -> Path:
    """What pretraining buys against the share of training labels: (pretrained - scratch) with its
    95% interval, one panel per task, one line per model. rows: (task, model, fraction, gain,
    low, high), the gain in points."""
    tasks = list(dict.fromkeys(r[0] for r in rows))
    fig, axes = _grid(len(tasks))
    for ax, task in zip(axes, tasks):
        for model in dict.fromkeys(r[1] for r in rows if r[0] == task):
            points = sorted(r[2:] for r in rows if r[:2] == (task, model))
            ax.errorbar([100 * f for f, *_ in points], [g for _, g, _, _ in points], yerr=_below_above(points),
                        marker="o", capsize=3, label=model)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xscale("log")
        shares = sorted({100 * r[2] for r in rows if r[0] == task})
        ax.set_xticks(shares, [f"{x:g}" for x in shares])
        ax.set_xticks([], minor=True)
        ax.set_title(task)
        ax.set_xlabel("training labels used (%)")
        ax.set_ylabel(f"pretrained − scratch, test {metric_names[task]} (points)")
        ax.legend(fontsize=8)
    return _save(fig, path)


def data_efficiency(rows: list[tuple[str, str, str, float, float, float]], metric_names: dict, path: Path) -> Path:
    """Main test metric against the share of training labels, one line per model/method, with the
    spread over seeds. rows: (task, model, method, fraction, mean, std)."""
    tasks = list(dict.fromkeys(r[0] for r in rows))
    fig, axes = _grid(len(tasks))
    for ax, task in zip(axes, tasks):
        for key in dict.fromkeys((m, meth) for t, m, meth, *_ in rows if t == task):
            points = sorted((f, v, s) for t, m, meth, f, v, s in rows if t == task and (m, meth) == key)
            ax.errorbar([100 * f for f, *_ in points], [100 * v for _, v, _ in points],
                        yerr=[100 * s for *_, s in points], marker="o", capsize=3,
                        linestyle="--" if key[1] == CONTROL.name else "-", label="/".join(key))
        ax.set_xscale("log")
        shares = sorted({100 * r[3] for r in rows if r[0] == task})
        ax.set_xticks(shares, [f"{x:g}" for x in shares])
        ax.set_xticks([], minor=True)  # a log axis labels its minor ticks too, over the major ones
        ax.set_title(task)
        ax.set_xlabel("training labels used (%)")
        ax.set_ylabel(f"test {metric_names[task]} (%)")
        ax.legend(fontsize=8)
    return _save(fig, path)


def score_by_budget(rows: list[tuple[str, str, float, float, float]], metric_names: dict, path: Path) -> Path:
    """The bake-off's figure: validation metric against pretraining minutes, one panel per task,
    one line per architecture with its spread over seeds; 0 minutes is the same model from random
    weights (the scratch control). rows: (task, model, minutes, mean, std)."""
    tasks = list(dict.fromkeys(r[0] for r in rows))
    fig, axes = _grid(len(tasks), width=5.0)
    for ax, task in zip(axes, tasks):
        for model in dict.fromkeys(r[1] for r in rows if r[0] == task):
            points = sorted(r[2:] for r in rows if r[:2] == (task, model))
            ax.errorbar([m for m, *_ in points], [100 * v for _, v, _ in points], yerr=[100 * s for *_, s in points],
                        marker="o", capsize=3, label=model)
        ax.set_title(task)
        ax.set_xlabel("pretraining minutes (wall, as the run took them)")
        ax.set_ylabel(f"validation {metric_names[task]} (%)")
        ax.legend(fontsize=8)
    return _save(fig, path)


def label_counts(rows: list[tuple[str, str, int, float, float]], path: Path) -> Path:
    """Main test metric against labelled examples per class, one panel per task/model, one line
    per method with its spread over seeds; the zero-shot prompt a flat dashed line.
    rows: (panel, method, shots (0: zero-shot), mean, std)."""
    panels = list(dict.fromkeys(r[0] for r in rows))
    fig, axes = _grid(len(panels))
    for ax, panel in zip(axes, panels):
        mine = [r for r in rows if r[0] == panel]
        shots = sorted({k for _, _, k, _, _ in mine if k})
        for method in dict.fromkeys(m for _, m, _, _, _ in mine):
            points = sorted((k, v, sd) for p, m, k, v, sd in mine if m == method)
            if not METHODS[method].trained:  # zero-shot: one level, whatever the label count
                v, sd = points[0][1], points[0][2]
                ax.axhline(100 * v, linestyle=":", color="black", label=f"{method} (zero-shot)")
                if sd:
                    ax.axhspan(100 * (v - sd), 100 * (v + sd), color="black", alpha=0.08)
                continue
            ax.errorbar([k for k, _, _ in points], [100 * v for _, v, _ in points],
                        yerr=[100 * sd for *_, sd in points], marker="o", capsize=3,
                        linestyle="--" if method == CONTROL.name else "-", label=method)
        ax.set_xscale("log")
        ax.set_xticks(shots, [str(k) for k in shots])
        ax.set_xticks([], minor=True)
        ax.set_title(panel)
        ax.set_xlabel("labelled examples per class")
        ax.set_ylabel("test metric (%)")
        ax.legend(fontsize=8)
    return _save(fig, path)


def read_curve(tsv: Path) -> tuple[list[float], list[float]]:
    """(steps, values) of a DVCLive TSV (columns step, value), or empty lists if absent."""
    if not tsv.exists():
        return [], []
    with open(tsv, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    value = [k for k in (rows[0] if rows else {}) if k not in ("step", "timestamp")]
    return [float(r["step"]) for r in rows], [float(r[value[0]]) for r in rows] if value else []


def learning_curves(panels: dict[str, dict[str, Path]], path: Path) -> Path:
    """One panel per title ("<task or pretraining>: <what the y axis is>"), one line per run:
    {title: {label: tsv}}; each panel's legend below it, clear of the curves."""
    most = max(len(curves) for curves in panels.values())
    fig, axes = _grid(len(panels), width=5.0, height=3.4 + 0.18 * ((most + 2) // 3), columns=2)
    colors = _plt().get_cmap("tab20").colors  # more runs than the default cycle's 10 colours
    for ax, (title, curves) in zip(axes, panels.items()):
        ax.set_prop_cycle(color=colors)
        for label, tsv in curves.items():
            steps, values = read_curve(tsv)
            if steps:
                ax.plot(steps, values, label=label, linestyle="--" if CONTROL.name in label else "-")
        name, _, ylabel = title.partition(": ")
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False)
    return _save(fig, path)


def confusions(panels: dict[str, list[dict]], path: Path) -> Path:
    """Row-normalised confusion matrices, one panel per run: {title: [{actual, predicted}, ...]}."""
    import numpy as np

    fig, axes = _grid(len(panels), width=3.6, height=3.4)
    for ax, (title, pairs) in zip(axes, panels.items()):
        names = sorted({p["actual"] for p in pairs} | {p["predicted"] for p in pairs})
        counts = Counter((p["actual"], p["predicted"]) for p in pairs)
        m = np.array([[counts[(a, b)] for b in names] for a in names], dtype=float)
        m = m / np.maximum(m.sum(1, keepdims=True), 1)
        ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        if len(names) <= 4:
            for i in range(len(names)):
                for j in range(len(names)):
                    ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=8,
                            color="white" if m[i, j] > 0.5 else "black")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("actual", fontsize=8)
    return _save(fig, path)
