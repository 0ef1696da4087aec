"""``write_report``: one self-contained HTML page on a campaign (figures embedded as PNG,
no scripts, no external files), written beside its results as report.html."""
from __future__ import annotations

import base64
import html
import io
import os
import time
from pathlib import Path

from cgphw.campaign import figures, stages
from cgphw.campaign.results import default_group_by, load_results, missing, read_campaign, summarize, summary_cells
from cgphw.errors import UserError
from cgphw.files import check_replaceable, write_text_atomic

RUN_COLUMNS = (("run", "run"), ("task", "task"), ("grid", "grid"), ("threshold", "t"), ("seed", "seed"),
               ("reached", "reached"), ("error", "error (SE)"), ("gates", "gates"), ("energy", "energy pJ"),
               ("synth_cells", "cells"), ("synth_pj_per_weight", "pJ/weight"), ("proof", "proof"),
               ("verified", "verified"), ("top1_after", "top-1 after"), ("delta_top1", "Δ top-1"),
               ("wall_seconds", "wall s"))
STYLE = """body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;color:#222;line-height:1.4}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;font-size:.82em;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .5em;
text-align:right}th{background:#f3f3f3}td.l,th.l{text-align:left}.note{color:#555;font-size:.9em}
img{max-width:100%;border:1px solid #eee}.fail{color:#b00;font-weight:bold}"""


GENERATOR = "<meta name='generator' content='cgphw campaign report'>"  # how a report of cgphw's is known


def write_report(folder: str | os.PathLike, *, out: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Write the campaign's report to ``out`` (default: report.html in the campaign folder,
    which is cgphw's). A file already at ``out`` is replaced only when it is a report cgphw
    wrote, or with ``force``."""
    folder = Path(folder)
    if out is not None:
        check_replaceable(out, force, is_report, "campaign report")
    out = Path(out) if out is not None else folder / "report.html"
    frame = load_results(folder)
    info = read_campaign(folder)
    try:
        write_text_atomic(out, render(frame, info, folder))
    except OSError as exc:
        raise UserError(f"cannot write the report {out} ({exc.strerror or exc})") from None
    return out


def is_report(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return GENERATOR.encode() in fh.read(400)
    except OSError:
        return False


def render(frame, info: dict, folder: Path) -> str:
    parts = [f"<h1>Campaign {_e(info.get('experiment', '?'))} <small>({_e(info.get('profile', ''))})</small></h1>",
             f"<p>{_e(info.get('description', ''))}</p>"]
    if info.get("study"):
        parts.append(f"<p class=note>The study reported: {_e(info['study'])}</p>")
    total = len(info.get("runs", []))
    parts.append(f"<p class=note>{len(frame)} of {total} runs finished; {int(frame['reached'].sum())} reached their "
                 f"error threshold. Folder <code>{_e(str(folder.resolve()))}</code>.</p>")
    group_by = default_group_by(frame)
    parts += ["<h2>Summary</h2>", _summary_table(summarize(frame, group_by), group_by),
              "<p class=note>min–max (median) over the runs of each setting.</p>"]
    archives = _archives(frame, folder)
    sections = [
        ("Convergence", figures.convergence(_curves(frame, folder)),
         "Error (squared error summed over the weights) and energy of the best circuit so far, against search "
         "time and generations; one line per run. The error falls first; once under the threshold the energy falls."),
        ("Error against energy", figures.front(frame, archives),
         "Every run's circuit (ringed: threshold reached); dashed: the circuits no other run beats in both; "
         f"grey: the Pareto front each run kept (its archive, {len(archives)} run(s)), every point checked "
         "against its genome."),
        ("Accuracy and energy per layer", figures.per_layer(frame),
         "Change of top-1 accuracy when the circuit's weights replace the layer's, and the circuit's energy "
         "(median over seeds)."),
        ("Sensitivity", figures.sensitivity(frame),
         "Top-1 change against the error each run was allowed: median and range over seeds."),
        ("Synthesis against a ROM and an SRAM read", figures.hardware(frame),
         "Energy per generated weight of the synthesised circuit (with reads of its stored weights from SRAM), "
         "of a synthesised ROM holding the same weights, and of one SRAM read (log scale)."),
    ]
    best = _best_run(frame)
    if best is not None:
        title = f"{best['run']}: {best['gates']} gates, error {best['error']:g}, {best['energy']:.4f} pJ"
        try:
            graph = stages.circuit_graph(folder / best["evolve_dir"])
        except UserError as exc:  # the run's folder was removed or damaged since
            sections.append(("The best circuit", None, f"The best circuit ({_e(title)}) cannot be drawn: {_e(exc)}"))
        else:
            drawing = figures.gate_graph(graph, title)
            text = ("The lowest-energy circuit that reached its threshold, as a gate graph (orange: constants)."
                    if drawing is not None else
                    f"The best circuit ({_e(title)}) has {len(graph['nodes'])} active gates, too many to draw; "
                    f"its expressions: <code>cgphw show {_e(folder / best['evolve_dir'])}</code>.")
            sections.append(("The best circuit", drawing, text))
    for title, fig, text in sections:
        if fig is None and title != "The best circuit":
            continue
        parts += [f"<h2>{title}</h2>", f"<p class=note>{text}</p>"]
        if fig is not None:
            parts.append(f"<img alt='{_e(title)}' src='data:image/png;base64,{_png(fig)}'>")
    parts += ["<h2>Runs</h2>", _runs_table(frame),
              f"<p class=note>Written by cgphw on {time.strftime('%Y-%m-%d %H:%M')}; the table is "
              f"<code>results.parquet</code> / <code>results.csv</code> beside this page.</p>"]
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'>" + GENERATOR + "<title>cgphw campaign "
            f"{_e(info.get('experiment', ''))}</title><style>{STYLE}</style></head><body>"
            + "\n".join(parts) + "</body></html>\n")


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    figures.plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _curves(frame, folder: Path) -> list[tuple[str, dict]]:
    import pandas as pd

    curves = []
    for _, r in frame.iterrows():
        path = stages.stats_file(folder / r["evolve_dir"])
        try:
            stats = pd.read_csv(path)
        except (OSError, ValueError):
            continue
        stats = stats.dropna(subset=["error", "energy"])
        if len(stats):
            curves.append((str(r["run"]), {k: stats[k].to_numpy() for k in ("time", "generation", "error", "energy")}))
    return curves


def _archives(frame, folder: Path) -> dict[str, list[tuple[float, float]]]:
    """Each run's own Pareto front as (per-weight RMS error, energy pJ), from its checked
    pareto.json; runs without an archive, or whose files no longer check, are left out."""
    from cgphw.cgp.rundir import load_run

    out = {}
    for _, r in frame.iterrows():
        try:
            front = load_run(folder / r["evolve_dir"]).pareto
        except UserError:  # (MismatchError too: a changed or damaged run is not drawn)
            continue
        points = [(p.metrics.rms_error, p.metrics.energy_pj) for p in front if p.metrics.rms_error is not None]
        if points:
            out[str(r["run"])] = points
    return out


def _best_run(frame):
    reached = frame[frame["reached"]]
    pool = reached if len(reached) else frame
    if pool.empty:
        return None
    key = "energy" if len(reached) else "error"
    return pool.sort_values([key, "gates"]).iloc[0]


def _summary_table(summary, group_by) -> str:
    head, body = summary_cells(summary, group_by)
    keys = len(group_by)

    def cell(tag, i, text):
        return f"<{tag}{' class=l' if i < keys else ''}>{_e(text)}</{tag}>"

    rows = "".join("<tr>" + "".join(cell("td", i, c) for i, c in enumerate(cells)) + "</tr>" for cells in body)
    return "<table><tr>" + "".join(cell("th", i, h) for i, h in enumerate(head)) + f"</tr>{rows}</table>"


def _runs_table(frame) -> str:
    cols = [(c, h) for c, h in RUN_COLUMNS if c in frame]
    head = "".join(f"<th class=l>{_e(h)}</th>" if c in ("run", "task") else f"<th>{_e(h)}</th>" for c, h in cols)
    rows = []
    for _, r in frame.iterrows():
        cells = []
        for c, _ in cols:
            v = r[c]
            if missing(v):
                text = "–"
            elif c in ("top1_after", "delta_top1"):
                text = f"{100 * v:{'+' if c == 'delta_top1' else ''}.2f}"
            elif isinstance(v, float):
                text = f"{v:.4g}"
            else:
                text = str(v)
            bad = (c == "verified" and v == "fail") or (c == "proof" and v == "failed")
            cls = " class=l" if c in ("run", "task") else (" class=fail" if bad else "")
            cells.append(f"<td{cls}>{_e(text)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"
