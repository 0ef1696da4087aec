"""A campaign's results: one tidy table (a row per run; results.parquet and results.csv in
the campaign folder) and its summaries per setting (min–max and median, as the study's
tables give them)."""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

from cgphw.errors import UserError
from cgphw.files import read_json

FORMAT = "cgphw-campaign/1"  # campaign.json; read by read_campaign alone (run and report)

# Settings a summary groups by when they differ between runs (any column may be named).
SETTINGS = ("experiment", "task", "grid", "lambda", "mutation", "mutation_max", "adaptive", "start", "function_set",
            "value_bank", "threshold", "pipeline")
# Figures a summary reports: column -> (heading, format, scale)
FIGURES = {
    "error": ("error (SE)", "{:g}", 1.0),
    "energy": ("energy pJ", "{:.4f}", 1.0),
    "gates": ("gates", "{:.0f}", 1.0),
    "synth_cells": ("cells", "{:.0f}", 1.0),
    "synth_pj_per_weight": ("pJ/weight", "{:.4f}", 1.0),
    "top1_after": ("top-1 %", "{:.2f}", 100.0),
    "delta_top1": ("Δ top-1", "{:+.2f}", 100.0),
    "wall_seconds": ("wall s", "{:.0f}", 1.0),
}


def write_results(out: Path, rows: list[dict]) -> Path:
    """The finished runs' rows as results.parquet and results.csv (atomically)."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    parquet = out / "results.parquet"
    _atomic(parquet, lambda p: frame.to_parquet(p, index=False))
    _atomic(out / "results.csv", lambda p: frame.to_csv(p, index=False))
    return parquet


def _atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):  # disk full, read-only folder (pyarrow's errors are OSErrors too)
            raise UserError(f"cannot write {path} ({exc.strerror or exc}); the runs' results are kept: "
                            "run the command again when it can be written") from None
        raise


def load_results(out: str | os.PathLike):
    """The results table of a campaign folder (a pandas DataFrame)."""
    import pandas as pd

    out = Path(out)
    path = out / "results.parquet"
    if not (out / "campaign.json").is_file():
        raise UserError(f"{out} is not a campaign folder (no campaign.json); run `cgphw run` first")
    read_campaign(out)  # a format this cgphw does not run is not read either
    if not path.is_file():
        raise UserError(f"{out} has no results.parquet yet: no run has finished (run `cgphw run` again)")
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many kinds for a damaged file
        raise UserError(f"{path} is not a readable results table ({type(exc).__name__})") from None


def read_campaign(out: str | os.PathLike) -> dict:
    """campaign.json of a campaign folder, of this cgphw's format (UserError otherwise)."""
    path = Path(out) / "campaign.json"
    doc = read_json(path)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else None
        raise UserError(f"{path} is not a cgphw campaign file of format {FORMAT!r} (found {found!r})")
    return doc


def default_group_by(frame) -> list[str]:
    varying = [c for c in SETTINGS if c in frame and frame[c].nunique(dropna=False) > 1]
    return varying or ["task"]


def summarize(frame, group_by: list[str] | None = None, *, figures: list[str] | None = None):
    """Per group of settings: runs, runs that reached their threshold, and min / median / max
    of every figure (a pandas DataFrame with columns like energy_min, energy_median, energy_max).
    ``figures``: only these columns of FIGURES (default: all that the runs have)."""
    import pandas as pd

    group_by = group_by or default_group_by(frame)
    unknown = [c for c in group_by if c not in frame.columns]
    if unknown:
        raise UserError(f"cannot group by {unknown[0]!r}: the results have columns {', '.join(frame.columns)}")
    unknown = [c for c in figures or () if c not in FIGURES]
    if unknown:
        raise UserError(f"no figure {unknown[0]!r}: choose from {', '.join(FIGURES)}")
    figures = [c for c in (figures or FIGURES) if c in frame and frame[c].notna().any()]
    rows = []
    for keys, part in frame.groupby(group_by, dropna=False, sort=True):
        keys = keys if isinstance(keys, tuple) else (keys,)
        row = dict(zip(group_by, keys, strict=True))
        row["runs"] = len(part)
        row["reached"] = int(part["reached"].sum())
        if "verified" in part and part["verified"].notna().any():
            row["verified"] = int((part["verified"] == "pass").sum())
        for c in figures:
            values = pd.to_numeric(part[c], errors="coerce").dropna()
            row[f"{c}_min"] = values.min() if len(values) else None
            row[f"{c}_median"] = values.median() if len(values) else None
            row[f"{c}_max"] = values.max() if len(values) else None
        rows.append(row)
    return pd.DataFrame(rows)


def summary_cells(summary, group_by: list[str]) -> tuple[list[str], list[list[str]]]:
    """Headings and text cells of a summary: each figure as min–max (median)."""
    figures = [c for c in FIGURES if f"{c}_min" in summary]
    head = [*group_by, "runs", "reached"] + (["verified"] if "verified" in summary else []) + \
        [FIGURES[c][0] for c in figures]
    body = []
    for _, r in summary.iterrows():  # a row of numbers only comes as floats: counts are ints again
        runs = int(r["runs"])
        cells = [_plain(r[c]) for c in group_by] + [str(runs), f"{int(r['reached'])}/{runs}"]
        if "verified" in summary:
            cells.append("–" if missing(r["verified"]) else f"{int(r['verified'])}/{runs}")
        for c in figures:
            _, fmt, scale = FIGURES[c]
            lo, mid, hi = r[f"{c}_min"], r[f"{c}_median"], r[f"{c}_max"]
            if missing(lo):
                cells.append("–")
            elif lo == hi:
                cells.append(fmt.format(lo * scale))
            else:
                cells.append(f"{fmt.format(lo * scale)}–{fmt.format(hi * scale)} ({fmt.format(mid * scale)})")
        body.append(cells)
    return head, body


def format_summary(summary, group_by: list[str]) -> str:
    """The summary as a text table."""
    head, body = summary_cells(summary, group_by)
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)) for b in body]
    return "\n".join(lines)


def missing(value) -> bool:
    """None or NaN (pandas keeps either for a figure a run does not have)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _plain(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    return "–" if missing(value) else str(value)
