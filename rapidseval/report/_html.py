"""``report.html``: one self-contained page built from a run directory's tables alone.

Figures are PNGs inlined as ``data:`` URIs, styles are inline, there is no
script, and a Content-Security-Policy forbids every fetch but ``data:``
images, so the page opens offline and makes no network request.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from ._checks import (GROUP_TITLES, GROUPS, CheckCounts, check_counts, checks_by_group, not_held, slice_groups,
                      slice_rows, slice_settings, unsupported_slices, where_label, window_label, worse_than_all,
                      worst_slices)
from ._load import RunTables, load_run
from ._plots import Plot, build_plots
from ._tables import explain_lines, facts, policy_summary, row_accounting, window_alarms

__all__ = ["write_report", "render_html"]

#: a table longer than this shows its first rows only and says so (the Parquet file has them all)
MAX_TABLE_ROWS = 400
#: "what moved" lists this many alarmed windows at most (explain.parquet has them all)
MAX_EXPLAIN_WINDOWS = 60
#: results that did not hold listed per rubric group, failed assertion rows, slices named per list
#: (checks.parquet, assertions.parquet and slices.parquet have them all)
MAX_CHECK_ROWS = 100
MAX_ASSERTION_ROWS = 50
MAX_SLICE_NAMES = 30

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5rem auto;max-width:1180px;color:#222;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:1px solid #ddd}
h3{font-size:1rem;margin-top:1.4rem}
nav a{margin-right:1rem}.sub{color:#666;margin-top:0}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;font-size:.9rem}
dl.facts dt{font-weight:600}dl.facts dd{margin:0;word-break:break-word}
table{border-collapse:collapse;font-size:.8rem;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.2rem .45rem;text-align:right;white-space:nowrap}
th{background:#f4f4f4;position:sticky;top:0}td.t{text-align:left}
.scroll{max-height:28rem;overflow:auto;display:inline-block;max-width:100%}
.alarm{color:#b00;font-weight:600}.muted{color:#777}.banner{background:#fde2e1;border:1px solid #b00;padding:.6rem;color:#700}
figure.plot{margin:1rem 0}figure.plot img{max-width:100%;height:auto;border:1px solid #eee;display:block}
figcaption{font-size:.8rem;color:#555;margin-top:.2rem}
pre{background:#f7f7f7;padding:.6rem;font-size:.75rem;overflow:auto;max-height:30rem}
"""
#: styles of the Checks and Slices sections, added only to pages that have them (an older run's page is unchanged)
_CHECKS_CSS = """td.fail,span.fail{color:#b00;font-weight:600}td.warn,span.warn{color:#a35200;font-weight:600}
td.wrap{white-space:normal;min-width:16rem;max-width:40rem;word-break:break-word}
"""

_SECTIONS = (
    ("summary", "Run summary"),
    ("checks", "Checks"),
    ("replay", "Replay: metrics per window"),
    ("monthly", "Monthly metrics"),
    ("slices", "Slices: metrics per slice"),
    ("shift", "Feature shift"),
    ("backtest", "Backtest: staleness and retraining policies"),
    ("lineage", "Lineage"),
)


def _count(count: int, noun: str) -> str:
    """``"1 window"``, ``"2 windows"``."""
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _png(fig, dpi: int = 100) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _cell(value, column: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return "<td></td>"
    if isinstance(value, (bool, np.bool_)):
        if column in ("alarm", "below_floor"):  # flagged alike, named apart: a floor breach is no shift alarm
            word = "ALARM" if column == "alarm" else "below"
            return f"<td class='alarm'>{word}</td>" if value else "<td></td>"
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, (int, np.integer)):
        return f"<td>{int(value):,}</td>"
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if value == 0 and column == "p_value":  # a double's underflow, not a certainty
            return "<td>&lt; 1e-300</td>"
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
            return f"<td>{value:.3g}</td>"
        return f"<td>{value:.4f}</td>" if abs(value) < 1000 else f"<td>{value:,.1f}</td>"
    if isinstance(value, pd.Timestamp):
        text = value.isoformat(sep=" ")
        return f"<td class='t'>{_esc(text[:-9] if text.endswith(' 00:00:00') else text)}</td>"
    return f"<td class='t'>{_esc(value)}</td>"


def _table(frame: pd.DataFrame, *, max_rows: int = MAX_TABLE_ROWS, source: str | None = None, cell=_cell) -> str:
    if frame.empty:
        return "<p class='muted'>(no rows)</p>"
    note = ""
    if len(frame) > max_rows:
        note = (f"<p class='muted'>first {max_rows:,} of {len(frame):,} rows"
                + (f"; all of them are in {_esc(source)}" if source else "") + "</p>")
        frame = frame.head(max_rows)
    head = "".join(f"<th>{_esc(column)}</th>" for column in frame.columns)
    columns = list(frame.columns)
    body = "".join("<tr>" + "".join(cell(value, column) for value, column in zip(row, columns)) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>{note}"


def _cols(frame: pd.DataFrame, wanted) -> pd.DataFrame:
    return frame[[column for column in wanted if column in frame.columns]]


def _figure(plot: Plot) -> str:
    uri = _png(plot.figure)
    caption = _esc(plot.caption or plot.title)
    return (f"<figure class='plot' id='plot-{_esc(plot.id)}'><img alt='{_esc(plot.title)}' src='{uri}'>"
            f"<figcaption>{caption}</figcaption></figure>")


def _section_summary(run: RunTables, plots) -> list[str]:
    out = ["<dl class='facts'>" + "".join(f"<dt>{_esc(key)}</dt><dd>{_esc(value)}</dd>" for key, value in facts(run)) + "</dl>"]
    out += [_figure(plot) for plot in plots]
    rows = row_accounting(run)
    if not rows.empty:
        out.append("<h3>Rows per input month, dropped by rule</h3>" + _table(rows))
    timings = run.manifest.get("timings_s") or {}
    if timings:
        seconds = pd.DataFrame({"stage": list(timings), "seconds": [float(value) for value in timings.values()]})
        out.append("<h3>Timings per stage</h3>" + _table(seconds))
    return out


_REPLAY_COLS = ("model", "window_start", "window_end", "n", "positives", "precision", "recall", "f1", "f1_low", "f1_high",
                "cumulative_f1", "trailing_f1", "known_cumulative_f1", "known_trailing_f1", "labels_known_fraction",
                "roc_auc", "log_loss", "brier", "delta_f1", "below_floor")


def _section_replay(run: RunTables, plots) -> list[str]:
    replay = run["replay"]
    out = [_figure(plot) for plot in plots]
    if not any(plot.id == "label-delay" for plot in plots):
        out.append("<p class='muted'>No label-delay columns in this run's replay table "
                   "(labels taken as known at once, or a run directory from before the label-delay view).</p>")
    if "in_period" in replay.columns:
        replay = replay[replay["in_period"].astype(bool)]
    out.append("<h3>Windows</h3>" + _table(_cols(replay, _REPLAY_COLS), source="replay.parquet"))
    return out


def _section_monthly(run: RunTables, plots) -> list[str]:
    cols = ("model", "month", "role", "n", "positives", "precision", "recall", "f1", "accuracy", "positive_rate",
            "predicted_positive_rate", "rows_read", "rows_dropped")
    return [_figure(plot) for plot in plots] + [_table(_cols(run["monthly"], cols), source="monthly.parquet")]


def _what_moved(run: RunTables) -> list[str]:
    """Per alarmed window, its alarmed features in words, largest effect first."""
    lines = explain_lines(run)
    if lines.empty:
        return []
    windows = list(dict.fromkeys(zip(lines["reference"], lines["window_start"])))
    out = [f"<h3 id='what-moved'>What moved ({_count(len(lines), 'alarmed feature')} in "
           f"{_count(len(windows), 'window')})</h3>",
           "<p class='muted'>Effect: the share of rows that moved (total variation of the category shares for "
           "categorical features, the largest CDF gap, KS, for ordered ones), beside what it is on windows without a "
           "shift; features ranked by the excess.  Percentiles by the inverted CDF.</p>"]
    for reference, start in windows[:MAX_EXPLAIN_WINDOWS]:
        rows = lines[(lines["reference"] == reference) & (lines["window_start"] == start)]
        label = rows["window"].iloc[0] if "window" in rows.columns else start
        items = "".join(f"<li><b>{_esc(line.feature)}</b> ({_effect_words(line)}): {_esc(line.what)}</li>"
                        for line in rows.itertuples())
        out.append(f"<p class='t'>{_esc(label)} against {_esc(reference)}</p><ol>{items}</ol>")
    if len(windows) > MAX_EXPLAIN_WINDOWS:
        out.append(f"<p class='muted'>first {MAX_EXPLAIN_WINDOWS} of {len(windows):,} windows; all of them are in "
                   "explain.parquet</p>")
    return out


def _effect_words(line) -> str:
    """``kind, measure effect, noise without a shift`` of one explanation line (what it has)."""
    def num(name):
        value = getattr(line, name, np.nan)
        return float(value) if value is not None and np.isfinite(float(value)) else None

    effect, noise = num("effect"), num("effect_noise")
    parts = [str(getattr(line, "kind", "") or "")]
    if effect is not None:
        parts.append(f"{getattr(line, 'effect_measure', '') or 'effect'} {effect:.3f}")
    if noise is not None:
        parts.append(f"{noise:.3f} without a shift")
    return _esc(", ".join(part for part in parts if part))


def _section_shift(run: RunTables, plots) -> list[str]:
    shift = run["shift"]
    out = _what_moved(run) + [_figure(plot) for plot in plots if plot.id != "attribution"]
    if shift.empty:
        return out
    cols = ("reference", "window", "window_start", "feature", "statistic", "value", "p_value", "threshold", "alarm",
            "exceedance", "n_reference", "n_window")
    if "alarm" in shift.columns:
        alarms = shift[shift["alarm"].fillna(False).astype(bool)]
        windows = ""
        if "window_alarm" in shift.columns and "window_start" in shift.columns:
            alarm_per_window = window_alarms(shift)
            windows = f"{int(alarm_per_window.sum()):,} of {len(alarm_per_window):,} windows alarm; "
        out.append(f"<h3>Alarms ({windows}{len(alarms):,} of {len(shift):,} comparisons)</h3>"
                   + _table(_cols(alarms, cols), source="shift.parquet"))
    attribution = [plot for plot in plots if plot.id == "attribution"]
    if attribution:
        out.append("<h3>Attribution</h3>" + _figure(attribution[0]) + _table(run["attribution"], source="attribution.parquet"))
    out.append("<details><summary>every comparison</summary>" + _table(_cols(shift, cols), source="shift.parquet") + "</details>")
    return out


def _section_backtest(run: RunTables, plots) -> list[str]:
    out = [_figure(plot) for plot in plots]
    policies = policy_summary(run)
    if not policies.empty:
        out.append("<h3>Policy comparison</h3>" + _table(policies))
    backtest = run["backtest"]
    if not backtest.empty:
        out.append("<details><summary>every fold × evaluation month</summary>"
                   + _table(backtest, source="backtest.parquet") + "</details>")
    return out


def _check_cell(value, column: str) -> str:
    """A cell of a checks table: a status that did not hold stands out, a detail wraps, a missing
    value (a data check has no model) is blank."""
    if value is pd.NA:
        return "<td></td>"
    if column == "status" and value in ("fail", "warn"):
        return f"<td class='t {value}'>{value}</td>"
    if column == "detail" and isinstance(value, str):
        return f"<td class='t wrap'>{_esc(value)}</td>"
    return _cell(value, column)


def _status_words(counts: CheckCounts) -> str:
    """``41 pass · <span class='warn'>2 warn</span> · <span class='fail'>1 fail</span>``."""
    def part(count: int, status: str) -> str:
        return f"<span class='{status}'>{count:,} {status}</span>" if count and status != "pass" else f"{count:,} {status}"

    return " · ".join(part(count, status) for count, status in ((counts.passed, "pass"), (counts.warned, "warn"),
                                                                 (counts.failed, "fail")))


def _listed(frame: pd.DataFrame, limit: int, source: str, cell=_cell) -> str:
    """The first ``limit`` rows of ``frame`` as a table, then how many more ``source`` holds."""
    more = len(frame) - limit
    return _table(frame.head(limit), cell=cell) + (
        f"<p class='muted'>{more:,} more in {_esc(source)}</p>" if more > 0 else "")


_CHECK_COLS = ("status", "check", "kind", "model", "where", "value", "threshold", "detail")


def _check_list(rows: pd.DataFrame) -> pd.DataFrame:
    """Check results as the page lists them: ``where`` (month or window) in place of month and window_start."""
    months = rows["month"] if "month" in rows.columns else [None] * len(rows)
    starts = rows["window_start"] if "window_start" in rows.columns else [None] * len(rows)
    return _cols(rows.assign(where=[where_label(m, w) for m, w in zip(months, starts)]), _CHECK_COLS)


def _check_groups(checks: pd.DataFrame) -> list[str]:
    """Per rubric group: its counts in the heading, then its results that did not hold (fail first)."""
    out = []
    for group in GROUPS:
        rows = checks[checks["group"] == group]
        if rows.empty:
            continue
        kinds = ", ".join(dict.fromkeys(rows["kind"].astype(str)))
        out.append(f"<h3 id='checks-{group}'>{_esc(GROUP_TITLES[group])} ({_esc(kinds)}): "
                   f"{_status_words(check_counts(rows))}</h3>")
        bad = not_held(rows)
        out.append("<p class='muted'>every result held</p>" if bad.empty
                   else _listed(_check_list(bad), MAX_CHECK_ROWS, "checks.parquet", cell=_check_cell))
    return out


def _failed_assertions(run: RunTables) -> list[str]:
    """The assertion rows a model got wrong (``assertions.parquet``), when the run has them."""
    assertions = run["assertions"]
    if assertions.empty:
        return []
    if "passed" in assertions.columns:
        assertions = assertions[~assertions["passed"].fillna(False).astype(bool)]
    if assertions.empty:
        return []
    cols = ("row", "model", "month", "expected", "proba", "predicted", "note")  # month: a backtest fold's origin
    return [f"<h3 id='checks-assertions'>Assertion rows a model got wrong ({len(assertions):,})</h3>",
            _listed(_cols(assertions, cols), MAX_ASSERTION_ROWS, "assertions.parquet", cell=_check_cell)]


def _section_checks(run: RunTables) -> list[str]:
    """Counts per rubric group, the results that did not hold, failed assertion rows, every result."""
    checks = checks_by_group(run)
    counts = check_counts(checks)
    out = [f"<p id='checks-counts'>{_count(counts.results, 'result')} of {_count(counts.checks, 'check')}: "
           f"{_status_words(counts)}. Grouped like the ML Test Score rubric. A <b>fail</b> result makes "
           "<code>rapidseval run</code> exit with code 3 once the run directory is written; a <b>warn</b> result "
           "is reported only.</p>"]
    table = pd.DataFrame([{"group": group, "kinds": ", ".join(dict.fromkeys(rows["kind"].astype(str))),
                           "checks": c.checks, "pass": c.passed, "warn": c.warned, "fail": c.failed}
                          for group in GROUPS for rows in [checks[checks["group"] == group]] if not rows.empty
                          for c in [check_counts(rows)]])
    out.append(_table(table))
    out += _check_groups(checks) + _failed_assertions(run)
    out.append("<details><summary>every check result</summary>"
               + _table(_check_list(checks), source="checks.parquet", cell=_check_cell) + "</details>")
    return out


def _slice_table(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Slice rows as the page lists them: slice, window, n, the metric, its band, the whole's metric."""
    named = rows.assign(window=[window_label(s, e) for s, e in zip(
        rows["window_start"] if "window_start" in rows.columns else [None] * len(rows),
        rows["window_end"] if "window_end" in rows.columns else [None] * len(rows))])
    named = named.rename(columns={f"whole_{metric}": f"whole {metric}"})
    return _cols(named, ("slice", "window", "n", metric, f"{metric}_low", f"{metric}_high", f"whole {metric}"))


def _unsupported_words(rows: pd.DataFrame, min_support: int) -> str:
    """The slices below the minimum support, by name: never ranked."""
    if rows.empty:
        return ""
    names = [f"{_esc(rec['slice'])} ({_count(int(rec['windows']), 'window')}, at most {int(rec['most_rows']):,} rows)"
             for rec in rows.head(MAX_SLICE_NAMES).to_dict("records")]
    more = f"; {len(rows) - MAX_SLICE_NAMES:,} more in slices.parquet" if len(rows) > MAX_SLICE_NAMES else ""
    return (f"<p class='unsupported'>Below the minimum support of {min_support:,} rows in a window, so not ranked: "
            + ", ".join(names) + more + "</p>")


def _of_slice_group(frame: pd.DataFrame, slice_by, model) -> pd.DataFrame:
    """The rows of ``frame`` of one slice definition and model (every model's when ``model`` is None)."""
    if frame.empty:
        return frame
    keep = frame["slice_by"] == slice_by
    if model is not None and "model" in frame.columns:
        keep &= frame["model"] == model
    return frame[keep]


def _section_slices(run: RunTables) -> list[str]:
    """Per slice definition and model: the worst supported slices, those significantly worse than the
    whole, the unsupported ones named; then every row."""
    slices = slice_rows(run)
    settings = slice_settings(run)
    metric = settings.metric
    several = "model" in slices.columns and slices["model"].nunique() > 1
    out = [f"<p>{_esc(metric)} per slice and window, with its band where the table has one. <i>whole</i>: the "
           "metric of all the slice definition's slices together in that window. A slice is <i>significantly worse "
           "than the whole</i> when its band lies below the whole's metric. Slices with fewer than "
           f"{settings.min_support:,} rows in a window are not judged.</p>"]
    worst = worst_slices(slices, settings)
    worse = worse_than_all(slices, settings)
    unsupported = unsupported_slices(slices)
    for (slice_by, model), _rows in slice_groups(slices):
        out.append(f"<h3>{_esc(slice_by)}" + (f" · {_esc(model)}" if several and model is not None else "") + "</h3>")
        top = _of_slice_group(worst, slice_by, model)
        out.append(f"<p class='t'>Worst {len(top)} supported by {_esc(metric)}</p>" + _table(_slice_table(top, metric))
                   if not top.empty else "<p class='muted'>no supported slice to rank</p>")
        if "worse_than_all" in slices.columns:
            below = _of_slice_group(worse, slice_by, model)
            out.append(f"<p class='t'>Significantly worse than the whole: {len(below):,}</p>"
                       + (_listed(_slice_table(below, metric), MAX_CHECK_ROWS, "slices.parquet") if len(below) else ""))
        words = _unsupported_words(_of_slice_group(unsupported, slice_by, model), settings.min_support)
        if words:
            out.append(words)
    out.append("<details><summary>every slice and window</summary>"
               + _table(run["slices"], source="slices.parquet", cell=_check_cell) + "</details>")
    return out


def _section_lineage(run: RunTables) -> list[str]:
    manifest = run.manifest
    out = []
    if manifest.get("inputs"):
        out.append("<h3>Inputs</h3>" + _table(pd.DataFrame(manifest["inputs"])))
    keys = [("job hash", manifest.get("job_hash")), ("seed", manifest.get("seed")), ("git commit", manifest.get("git_commit")),
            ("created (UTC)", manifest.get("created_utc")), ("manifest version", manifest.get("rapidseval_manifest"))]
    out.append("<dl class='facts'>" + "".join(f"<dt>{_esc(key)}</dt><dd>{_esc(value)}</dd>"
                                              for key, value in keys if value is not None) + "</dl>")
    if manifest.get("packages"):
        packages = manifest["packages"]
        out.append("<h3>Packages</h3>" + _table(pd.DataFrame({"package": list(packages), "version": list(packages.values())})))
    if manifest.get("hardware"):
        out.append("<h3>Hardware</h3>" + _table(pd.DataFrame({"key": list(manifest["hardware"]),
                                                               "value": [str(value) for value in manifest["hardware"].values()]})))
    if run.job:
        out.append("<h3>Resolved job</h3><details><summary>job spec as run</summary><pre>"
                   + _esc(json.dumps(run.job, indent=2, default=str)) + "</pre></details>")
    return out


def _section_bodies(run: RunTables, plots: list[Plot]) -> dict[str, list[str]]:
    """Section key -> its HTML parts (empty where the run has no table for it)."""
    by_section: dict[str, list[Plot]] = {}
    for plot in plots:
        by_section.setdefault(plot.section, []).append(plot)
    return {
        "summary": _section_summary(run, by_section.get("summary", [])),
        "checks": _section_checks(run) if not checks_by_group(run).empty else [],
        "slices": _section_slices(run) if not slice_rows(run).empty else [],
        "replay": _section_replay(run, by_section.get("replay", [])) if run.has("replay") else [],
        "monthly": _section_monthly(run, by_section.get("monthly", [])) if run.has("monthly") else [],
        "shift": _section_shift(run, by_section.get("shift", [])) if run.has("shift") or run.has("attribution") else [],
        "backtest": _section_backtest(run, by_section.get("backtest", []))
        if run.has("backtest") or run.has("staleness") or run.has("policies") else [],
        "lineage": _section_lineage(run),
    }


def _page_header(run: RunTables, present: list[tuple[str, str]]) -> list[str]:
    """The document head, the run's name and kind, banners (incomplete, warnings) and the navigation."""
    title = f"rapidseval: {run.name}"
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<meta http-equiv='Content-Security-Policy' content=\"{_CSP}\">",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{_esc(title)}</title><style>{_CSS}"
        + (_CHECKS_CSS if any(key in ("checks", "slices") for key, _heading in present) else "")
        + "</style></head><body>",
        f"<header><h1>rapidseval run: {_esc(run.name)}</h1>",
        f"<p class='sub'>{_esc(run.kind)} job · backend {_esc(run.manifest.get('backend', '?'))} · "
        f"created {_esc(run.manifest.get('created_utc', '?'))} UTC</p>",
    ]
    if not run.complete:
        parts.append("<p class='banner' id='incomplete'>This run did not finish: the tables below are partial.</p>")
    warnings = [str(warning) for warning in run.manifest.get("warnings") or []]
    if warnings:
        parts.append("<div class='banner' id='warnings'><strong>Warnings</strong><ul>"
                     + "".join(f"<li>{_esc(warning)}</li>" for warning in warnings) + "</ul></div>")
    parts.append("<nav>" + "".join(f"<a href='#{key}'>{_esc(heading.split(':')[0])}</a>" for key, heading in present)
                 + "</nav></header>")
    return parts


def render_html(run: RunTables) -> str:
    """The page for ``run`` as one HTML string."""
    plots = build_plots(run)
    bodies = _section_bodies(run, plots)
    for plot in plots:  # figures are big; free them as soon as they are PNGs
        plot.figure.clear()
    present = [(key, heading) for key, heading in _SECTIONS if bodies[key]]
    parts = _page_header(run, present)
    for key, heading in present:
        parts.append(f"<section id='{key}'><h2>{_esc(heading)}</h2>")
        parts.extend(bodies[key])
        parts.append("</section>")
    # no path here: the page is written in a temporary directory that is then renamed, and may be moved
    parts.append("<footer class='muted'><p>Built from the tables in this run directory alone; rebuild it with "
                 "<code>rapidseval report RUN_DIR</code>.</p></footer></body></html>")
    return "\n".join(parts)


def write_report(run_dir: str | Path) -> Path:
    """(Re)build ``run_dir/report.html`` from the manifest and tables in ``run_dir``.

    Parameters
    ----------
    run_dir : path
        A run directory (``manifest.json`` and any of the tables in
        :data:`rapidseval.report.TABLES`); absent tables and columns are left out.

    Returns
    -------
    Path
        The page written (atomically: a temporary file renamed into place).
    """
    run = load_run(run_dir)
    page = render_html(run)
    path = Path(run_dir) / "report.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path
