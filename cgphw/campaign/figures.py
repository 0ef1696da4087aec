"""The report's figures (matplotlib, Agg backend). Each function returns a Figure, or None
when the campaign holds nothing to show for it."""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")  # no display: figures are only ever written to files

import matplotlib.pyplot as plt
import numpy as np

MAX_DRAWN_NODES = 400  # a larger circuit is described, not drawn
MAX_OVERLAID_RUNS = 40
COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _figure(width: float, height: float, *shape):
    fig, axes = plt.subplots(*shape, figsize=(width, height), dpi=90, squeeze=False)
    return fig, axes


def convergence(curves: list[tuple[str, dict]]):
    """Error and energy of the parent against time and generations, one line per run.
    ``curves``: (label, {"time", "generation", "error", "energy"} arrays)."""
    if not curves:
        return None
    fig, ax = _figure(11, 6.5, 2, 2)
    for i, (label, c) in enumerate(curves[:MAX_OVERLAID_RUNS]):
        color = COLORS[i % len(COLORS)]
        for col, x in enumerate(("time", "generation")):
            ax[0][col].step(c[x], c["error"], where="post", color=color, lw=1, label=label if col == 0 else None)
            ax[1][col].step(c[x], c["energy"], where="post", color=color, lw=1)
    for col, xlabel in enumerate(("search time (s)", "generation")):
        ax[0][col].set_yscale("symlog", linthresh=1.0)
        ax[0][col].set_ylabel("error (SE)")
        ax[1][col].set_ylabel("energy (pJ)")
        for row in range(2):
            ax[row][col].set_xlabel(xlabel)
            ax[row][col].grid(alpha=0.3)
    if len(curves) <= 12:
        ax[0][0].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def front(frame, archives: dict[str, list[tuple[float, float]]] | None = None):
    """Per-weight RMS error against energy for every run (colour: threshold, marker: seed),
    the non-dominated front across them, and each run's own Pareto archive if it kept one."""
    if frame.empty:
        return None
    fig, ax = _figure(7.5, 4.8, 1, 1)
    ax = ax[0][0]
    markers = "os^Dv<>ph*"
    thresholds = sorted(frame["threshold"].unique())
    seeds = sorted(frame["seed"].unique())
    for points in (archives or {}).values():
        if points:
            xs, ys = zip(*sorted(points))
            ax.plot(ys, xs, color="0.75", lw=0.8, zorder=1)
    for _, r in frame.iterrows():
        color = COLORS[thresholds.index(r["threshold"]) % len(COLORS)]
        marker = markers[seeds.index(r["seed"]) % len(markers)]
        ax.scatter(r["energy"], r["rms_error"], color=color, marker=marker, s=30, zorder=3,
                   edgecolor="black" if r["reached"] else "none")
    best = pareto_points(list(zip(frame["energy"], frame["rms_error"])))
    if len(best) > 1:
        ax.plot(*zip(*best), color="black", lw=1, ls="--", zorder=2, label="front across runs")
    for i, t in enumerate(thresholds):
        ax.scatter([], [], color=COLORS[i % len(COLORS)], label=f"t = {t:g}")
    ax.set_xlabel("energy per evaluation (pJ)")
    ax.set_ylabel("per-weight RMS error")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def pareto_points(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats in both coordinates (smaller is better), by x."""
    out, best_y = [], math.inf
    for x, y in sorted(points):
        if y < best_y:
            out.append((x, y))
            best_y = y
    return out


def per_layer(frame):
    """Accuracy change and circuit energy per layer (one bar per threshold)."""
    data = frame.dropna(subset=["delta_top1"])
    if data.empty or data["layer"].nunique() < 1:
        return None
    layers = list(dict.fromkeys(data["layer"]))
    thresholds = sorted(data["threshold"].unique())
    fig, ax = _figure(max(7.0, 0.35 * len(layers) * len(thresholds) + 3), 6, 2, 1)
    width = 0.8 / len(thresholds)
    x = np.arange(len(layers))
    for i, t in enumerate(thresholds):
        part = data[data["threshold"] == t].groupby("layer", sort=False)
        delta = part["delta_top1"].median().reindex(layers) * 100
        energy = part["energy"].median().reindex(layers)
        ax[0][0].bar(x + i * width, delta, width, label=f"t = {t:g}", color=COLORS[i % len(COLORS)])
        ax[1][0].bar(x + i * width, energy, width, color=COLORS[i % len(COLORS)])
    for a, label in ((ax[0][0], "Δ top-1 (points)"), (ax[1][0], "energy (pJ)")):
        a.set_xticks(x + width * (len(thresholds) - 1) / 2, layers, rotation=60 if len(layers) > 6 else 0,
                     ha="right" if len(layers) > 6 else "center", fontsize=7)
        a.set_ylabel(label)
        a.grid(alpha=0.3, axis="y")
    ax[0][0].axhline(0, color="black", lw=0.6)
    ax[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def sensitivity(frame):
    """Accuracy change against the error allowed (threshold), one line per task."""
    data = frame.dropna(subset=["delta_top1"])
    swept = data.groupby("task")["threshold"].transform("nunique") > 1  # a curve needs two thresholds
    data = data[swept]
    if data.empty:
        return None
    fig, ax = _figure(7.5, 4.5, 1, 1)
    ax = ax[0][0]
    for i, (task, part) in enumerate(data.groupby("task", sort=False)):
        curve = part.groupby("threshold")["delta_top1"].agg(["min", "median", "max"]) * 100
        color = COLORS[i % len(COLORS)]
        ax.plot(curve.index, curve["median"], marker="o", color=color, label=task)
        ax.fill_between(curve.index, curve["min"], curve["max"], color=color, alpha=0.15)
    ax.set_xlabel("threshold t (per-weight RMS error allowed)")
    ax.set_ylabel("Δ top-1 (points): median, min–max")
    ax.axhline(0, color="black", lw=0.6)
    ax.grid(alpha=0.3)
    if data["task"].nunique() <= 15:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def hardware(frame):
    """Energy per generated weight: synthesised circuit (with its stored-weight reads),
    the same weights from a synthesised ROM, and an SRAM read."""
    data = frame.dropna(subset=["synth_pj_per_weight"])
    if data.empty:
        return None
    data = data.sort_values("circuit_pj_per_weight_with_reads")
    fig, ax = _figure(max(7.0, 0.45 * len(data) + 2), 4.5, 1, 1)
    ax = ax[0][0]
    x = np.arange(len(data))
    series = (("circuit_pj_per_weight_with_reads", "circuit (+ stored-weight SRAM reads)"),
              ("rom_pj_per_weight", "ROM of the weights"), ("sram_pj_per_weight", "SRAM read"))
    for i, (col, label) in enumerate(series):
        ax.bar(x + (i - 1) * 0.27, data[col].astype(float), 0.27, label=label, color=COLORS[i])
    ax.set_yscale("log")
    ax.set_xticks(x, data["run"].str.slice(0, 28), rotation=60, ha="right", fontsize=6)
    ax.set_ylabel("pJ per generated weight")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def gate_graph(graph: dict, title: str):
    """The circuit as a gate graph: inputs left, gates at their grid place, outputs right."""
    nodes = graph["nodes"]
    if len(nodes) > MAX_DRAWN_NODES:
        return None
    n_in, n_out = graph["inputs"], len(graph["outputs"])
    used_cols = sorted({n["col"] for n in nodes})
    column_of = {c: i + 1 for i, c in enumerate(used_cols)}  # columns without active gates are left out
    rows = max([graph["rows"], n_in, n_out, 1])
    place = {p: (0.0, _spread(p, n_in, rows)) for p in range(n_in)}
    for n in nodes:
        place[n["pin"]] = (float(column_of[n["col"]]), float(n["row"]) * rows / max(1, graph["rows"]))
    right = float(len(used_cols) + 1)
    fig, ax = _figure(min(16, 2.2 + 1.3 * (len(used_cols) + 2)), min(14, 1.5 + 0.32 * rows), 1, 1)
    ax = ax[0][0]
    for n in nodes:
        for p in n["operands"]:
            if p in place:
                ax.plot(*zip(place[p], place[n["pin"]]), color="0.6", lw=0.7, zorder=1)
    for j, p in enumerate(graph["outputs"]):
        end = (right, _spread(j, n_out, rows))
        if p in place:
            ax.plot(*zip(place[p], end), color="tab:green", lw=0.6, alpha=0.6, zorder=1)
        ax.annotate(f"out{j}", end, fontsize=6, ha="left", va="center")
    for p in range(n_in):
        ax.annotate(f"in{p}", place[p], fontsize=6, ha="right", va="center")
    for n in nodes:
        color = "tab:blue" if n["operands"] else "tab:orange"
        ax.annotate(n["gate"], place[n["pin"]], fontsize=6, ha="center", va="center", color="white", zorder=3,
                    bbox={"boxstyle": "round,pad=0.3", "fc": color, "ec": "none"})
    ax.set_title(title, fontsize=9)
    ax.set_xlim(-0.8, right + 0.8)
    ax.invert_yaxis()
    ax.axis("off")
    fig.tight_layout()
    return fig


def _spread(i: int, n: int, height: int) -> float:
    return (i + 0.5) * height / max(1, n) - 0.5
