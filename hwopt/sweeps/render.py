"""sweep.json, sweep.csv, sweep.md and sweep.html of a sweep report, each written atomically.

All four derive from the report alone, so they are as deterministic as sweep.json itself.
The HTML is one self-contained file (inline SVG, inline CSS, no scripts).
"""

from __future__ import annotations

import csv
import dataclasses
import html
import io
from pathlib import Path

from hwopt.fileio import atomic_write_text
from hwopt.reports.sweep_plots import Best, Point, cross_target_figure, front_figure
from hwopt.sweeps.records import SweepRecord, SweepReport

CSV_COLUMNS = ("model", "pipeline", "target", "status", "cycles", "inference_s", "encoded_weight_bytes",
               "peak_sram_bytes", "flash_bytes", "cpu_operators", "fidelity_samples", "top1_agreement",
               "accuracy_before", "accuracy_after", "min_cosine", "min_snr_db", "pareto_target", "pareto_model",
               "key", "error")
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}tr.front td{background:#eef6ee}tr.failed td{background:#fdecec}
figure{margin:12px 0}svg{max-width:100%;height:auto}
"""


def _fmt(x: float | None, digits: int = 6) -> str:
    return "" if x is None else f"{round(x, digits):g}"


def _fronts(report: SweepReport) -> tuple[set[tuple[str, str, str]], set[tuple[str, str, str]]]:
    per_t = {(p.model, p.pipeline, p.target) for pts in report.pareto.per_target.values() for p in pts}
    per_m = {(p.model, p.pipeline, p.target) for pts in report.pareto.per_model.values() for p in pts}
    return per_t, per_m


def render_csv(report: SweepReport) -> str:
    """One row per record; fidelity flattened; empty cells where a figure does not apply."""
    per_t, per_m = _fronts(report)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in report.records:
        f = r.fidelity
        ident = (r.model, r.pipeline, r.target)
        w.writerow([r.model, r.pipeline, r.target, r.status.value, r.cycles if r.cycles is not None else "",
                    "" if r.inference_s is None else repr(r.inference_s), *("" if v is None else v for v in
                                          (r.encoded_weight_bytes, r.peak_sram_bytes, r.flash_bytes, r.cpu_operators)),
                    "" if f is None else f.samples, _fmt(f.top1_agreement if f else None),
                    _fmt(f.accuracy_before if f else None), _fmt(f.accuracy_after if f else None),
                    _fmt(f.min_cosine if f else None), _fmt(f.min_snr_db if f else None),
                    int(ident in per_t), int(ident in per_m), r.key, r.error or ""])
    return buf.getvalue()


def _num(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def _ms(s: float | None) -> str:
    return "-" if s is None else f"{s * 1e3:.4g}"


def _fid(r: SweepRecord) -> str:
    return "-" if r.fidelity is None else f"{r.fidelity.score:.4f}"


HEAD = ("model", "pipeline", "target", "status", "cycles", "ms", "encoded B", "peak SRAM B", "flash B", "CPU ops",
        "fidelity", "front")


def _cells(r: SweepRecord, per_t: set[tuple[str, str, str]]) -> list[str]:
    front = "yes" if (r.model, r.pipeline, r.target) in per_t else ""
    return [r.model, r.pipeline, r.target, r.status.value, _num(r.cycles), _ms(r.inference_s),
            _num(r.encoded_weight_bytes), _num(r.peak_sram_bytes), _num(r.flash_bytes), _num(r.cpu_operators),
            _fid(r), front]


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: SweepReport) -> str:
    per_t, _ = _fronts(report)
    ok = len(report.records) - len(report.failures)
    lines = [f"# hwopt sweep: {report.jobs} jobs, {ok} ok, {len(report.failures)} failed", "",
             "Front: on the Pareto front of its target over " + ", ".join(report.pareto.objectives) + ".", "",
             "| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    lines += ["| " + " | ".join(_md_escape(c) for c in _cells(r, per_t)) + " |" for r in report.records]
    lines += ["", "## Best pair per model (fastest point of its cross-target front)", ""]
    lines += [f"- {_md_escape(m)}: `{p.pipeline}` on {p.target}" for m, p in report.pareto.fastest.items()] or ["none"]
    lines += ["", "## Failures", ""]
    lines += [f"- {_md_escape(r.model)} / {r.pipeline} / {r.target}: {_md_escape(r.error or '')}"
              for r in report.failures] or ["none"]
    return "\n".join(lines) + "\n"


def _short_names(models: list[str]) -> dict[str, str]:
    """File names for the plot legends when they are unique, else the labels as they are."""
    names = {m: Path(m).name for m in models}
    return names if len(set(names.values())) == len(names) else {m: m for m in models}


def _figures(report: SweepReport) -> list[str]:
    per_t, _ = _fronts(report)
    ok = [r for r in report.records if r.ok and r.encoded_weight_bytes is not None and r.inference_s is not None]
    short = _short_names(sorted({r.model for r in ok}))
    ok = [dataclasses.replace(r, model=short[r.model]) for r in ok]
    per_t = {(short.get(m, m), p, t) for m, p, t in per_t}
    fastest = {short[m]: p for m, p in report.pareto.fastest.items() if m in short}
    parts: list[str] = []
    for target in sorted({r.target for r in ok}):
        pts = [Point(r.model, r.pipeline, r.encoded_weight_bytes or 0, r.inference_s or 0.0,
                     r.fidelity.score if r.fidelity else None, (r.model, r.pipeline, r.target) in per_t)
               for r in ok if r.target == target]
        parts += [f"<h3>{html.escape(target)}</h3>", "<figure>",
                  front_figure(pts, f"{target}: encoded size vs inference time (ringed: Pareto front)"), "</figure>"]
    best: list[Best] = []
    for model in sorted({r.model for r in ok}):
        winner = fastest.get(model)
        for target in sorted({r.target for r in ok if r.model == model}):
            rs = [r for r in ok if r.model == model and r.target == target]
            b = min(rs, key=lambda r: (r.inference_s or 0.0, r.encoded_weight_bytes or 0, r.pipeline))
            is_win = winner is not None and (winner.pipeline, winner.target) == (b.pipeline, b.target)
            best.append(Best(model, target, b.pipeline, b.inference_s or 0.0, is_win))
    if best:
        parts += ["<h2>Across targets</h2>", "<figure>",
                  cross_target_figure(best, "best inference time per model and target (label: the fastest pair)"),
                  "</figure>"]
    return parts


def render_html(report: SweepReport) -> str:
    e = html.escape
    per_t, _ = _fronts(report)
    ok = len(report.records) - len(report.failures)
    title = f"hwopt sweep: {report.jobs} jobs, {ok} ok, {len(report.failures)} failed"
    parts = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
             f"<title>{e(title)}</title><style>{CSS}</style></head><body>", f"<h1>{e(title)}</h1>",
             "<h2>Pareto fronts per target</h2>"]
    parts += _figures(report)
    parts += ["<h2>Records</h2>", "<table><tr>"]
    parts += [f"<th class=\"l\">{e(h)}</th>" if i < 4 else f"<th>{e(h)}</th>" for i, h in enumerate(HEAD)]
    parts.append("</tr>")
    for r in report.records:
        cls = " class=\"failed\"" if not r.ok else (" class=\"front\"" if (r.model, r.pipeline, r.target) in per_t else "")
        cells = _cells(r, per_t)
        parts.append(f"<tr{cls}>" + "".join(f"<td class=\"l\">{e(c)}</td>" if i < 4 else f"<td>{e(c)}</td>"
                                            for i, c in enumerate(cells)) + "</tr>")
    parts += ["</table>", "<h2>Failures</h2>", "<ul>"]
    parts += [f"<li>{e(r.model)} / {e(r.pipeline)} / {e(r.target)}: {e(r.error or '')}</li>" for r in report.failures] \
        or ["<li>none</li>"]
    parts += ["</ul>", "</body></html>"]
    return "\n".join(parts) + "\n"


OUTPUTS = ("sweep.json", "sweep.csv", "sweep.md", "sweep.html")


def write_outputs(report: SweepReport, out: Path) -> None:
    """sweep.json, sweep.csv, sweep.md, sweep.html into `out`, each replaced atomically.

    All four are functions of sweep.json: when it is unchanged and the others are there,
    nothing is rewritten (a fully cached rerun then costs no plotting).
    """
    text = report.to_json()
    try:
        if (out / "sweep.json").read_text(encoding="utf-8") == text and all((out / n).is_file() for n in OUTPUTS):
            return
    except (OSError, UnicodeDecodeError):
        pass
    atomic_write_text(out / "sweep.json", text)
    atomic_write_text(out / "sweep.csv", render_csv(report))
    atomic_write_text(out / "sweep.md", render_markdown(report))
    atomic_write_text(out / "sweep.html", render_html(report))
