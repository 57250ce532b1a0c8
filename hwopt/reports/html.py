"""Render a compile report as Markdown and as one self-contained HTML file.

The HTML has no scripts and no external resources: the plots are inline SVG and the
styles inline CSS, so it opens anywhere (a CI artefact viewer, a mail attachment).
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import numpy as np

from hwopt.analysis.deflate import DeflateMethod
from hwopt.engines.compile import CompileLayer
from hwopt.reports.plots import CycleBar, cycles_figure, density_figure, sram_figure

if TYPE_CHECKING:
    from hwopt.engines.compile import CompileReport, CompileTotals

TOP_LAYERS = 5


def _kib(n: int | None) -> str:
    return "-" if n is None else f"{n / 1024:.1f} KiB"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _num(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def _deflate(t: CompileTotals) -> str:
    """The input's DEFLATE size; a sampled estimate says so, with its bound."""
    d = t.input_deflate
    if d is None or d.method is DeflateMethod.EXACT:
        return f"{t.input_deflate_bytes:,} bytes"
    return f"~{d.bytes:,} bytes (sampled, within {100 * d.max_error:.2f}%)"


def _summary_rows(r: CompileReport) -> list[tuple[str, str]]:
    t = r.totals
    return [
        ("target", f"{r.target} ({r.accelerator}, {r.system_config}, {r.memory_mode}, {r.clock_hz / 1e6:g} MHz)"),
        ("pipeline", r.pipeline or "none"),
        ("cycles per inference", f"{t.cycles:,} (NPU {t.npu_cycles:,})"),
        ("inference time", f"{t.inference_s * 1e3:.3f} ms ({t.inferences_per_second:.1f} inferences/s)"),
        ("MACs", f"{t.macs:,}"),
        ("peak SRAM", _kib(t.peak_sram_bytes) + (f" of {_kib(r.sram_size_bytes)}" if r.sram_size_bytes else "")),
        ("flash (read-only)", _kib(t.flash_bytes)),
        ("encoded weights", f"{_kib(t.encoded_weight_bytes)} (original {_kib(t.original_weight_bytes)})"),
        ("operators", f"{t.npu_operators} on the NPU, {t.cpu_operators} on the CPU"),
        ("input model", f"{t.input_bytes:,} bytes, DEFLATE {_deflate(t)}"),
        ("output model", f"{r.output_model}, {t.output_bytes:,} bytes"),
    ]


def _top(r: CompileReport) -> list[tuple[int, int]]:
    ranked = sorted(((la.cycles, i) for i, la in enumerate(r.layers)), reverse=True)
    return [(c, i) for c, i in ranked[:TOP_LAYERS] if c > 0]


LAYER_HEAD = ("op", "type", "where", "cycles", "NPU", "bound", "MACs", "util", "staging", "enc. weights", "format",
              "sparsity", "uniq", "uniq/ch")


def _layer_cells(la: object) -> list[str]:
    assert isinstance(la, CompileLayer)
    return [str(la.op_index), la.op, la.placement, _num(la.cycles), _num(la.npu_cycles), la.bound, _num(la.macs),
            _pct(la.mac_utilisation), _kib(la.staging_bytes), _num(la.encoded_weight_bytes), la.weight_format or "-",
            _pct(la.sparsity), _num(la.unique_values), _num(la.max_unique_per_channel)]


def compile_markdown(r: CompileReport) -> str:
    lines = [f"# hwopt compile: {r.model} for {r.target}", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in _summary_rows(r)]
    top = _top(r)
    if top and r.totals.cycles:
        lines += ["", "## Top layers by cycles", ""]
        lines += [f"- {r.layers[i].op} #{r.layers[i].op_index}: {c:,} cycles ({100 * c / r.totals.cycles:.1f}%), "
                  f"bound by {r.layers[i].bound}" for c, i in top]
    lines += ["", "## Layers", "", "| " + " | ".join(LAYER_HEAD) + " |", "|" + "---|" * len(LAYER_HEAD)]
    lines += ["| " + " | ".join(_layer_cells(la)) + " |" for la in r.layers]
    if r.cpu_reasons:
        lines += ["", "## Operators on the CPU", "", "| op | type | rule | why | fix |", "|---|---|---|---|---|"]
        lines += [f"| {c.op_index} | {c.op} | `{x.rule}` | {x.message} | {x.fix} |" for c in r.cpu_reasons
                  for x in c.reasons]
    lines += ["", "## Findings", ""]
    lines += [f"- **{f.severity.value}** `{f.rule}`: {f.message}" for f in r.findings] or ["none"]
    return "\n".join(lines) + "\n"


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}tr.top td{background:#fff4e5}
.sev-error{color:#b00020;font-weight:600}.sev-warning{color:#a15c00}.sev-info{color:#1f5f99}
td.name div{max-width:18em;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
figure{margin:12px 0}svg{max-width:100%;height:auto}
"""


def compile_html(r: CompileReport, density: list[tuple[str, np.ndarray, np.ndarray]]) -> str:
    e = html.escape
    top_idx = {i for _, i in _top(r)}
    parts = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
             f"<title>hwopt compile: {e(r.model)} for {e(r.target)}</title><style>{CSS}</style></head><body>",
             f"<h1>hwopt compile: {e(r.model)} for {e(r.target)}</h1>", "<table>"]
    parts += [f"<tr><th class=\"l\">{e(k)}</th><td class=\"l\">{e(v)}</td></tr>" for k, v in _summary_rows(r)]
    parts.append("</table>")
    labels = [f"{la.op_index}:{la.op}" for la in r.layers]
    bars = [CycleBar(lbl, la.npu_cycles, max(la.sram_access_cycles, la.dram_access_cycles, la.on_chip_flash_access_cycles,
                                              la.off_chip_flash_access_cycles), la.cycles, la.bound.split(":")[0])
            for lbl, la in zip(labels, r.layers, strict=True)]
    parts += ["<h2>Cycles per layer</h2>", "<figure>",
              cycles_figure(bars, f"cycles per layer on {r.target} (bars: NPU compute, then memory above it)"), "</figure>"]
    if density and r.pipeline:
        parts += ["<h2>Weight values before and after the pipeline</h2>", "<figure>",
                  density_figure(density, "weight-value density (zero-point corrected)"), "</figure>"]
    elif density:
        parts += ["<h2>Weight values</h2>", "<figure>",
                  density_figure(density, "weight-value density (zero-point corrected)", compare=False), "</figure>"]
    parts += ["<h2>SRAM in use</h2>", "<figure>",
              sram_figure(labels, [la.staging_bytes for la in r.layers], r.sram_size_bytes, f"staging SRAM per layer on {r.target}"),
              "</figure>", "<h2>Layers</h2>", "<table><tr>"]
    parts += [f"<th class=\"l\">{e(h)}</th>" if h in ("type", "where", "bound", "format") else f"<th>{e(h)}</th>" for h in LAYER_HEAD]
    parts.append("<th class=\"l\">output tensor</th></tr>")
    for i, la in enumerate(r.layers):
        cells = _layer_cells(la)
        row = "".join(f"<td class=\"l\">{e(c)}</td>" if k in (1, 2, 5, 10) else f"<td>{e(c)}</td>" for k, c in enumerate(cells))
        row += f"<td class=\"l name\"><div title=\"{e(la.name)}\">{e(la.name)}</div></td>"
        cls = ' class="top"' if i in top_idx else ""
        parts.append(f"<tr{cls}>{row}</tr>")
    parts.append("</table>")
    if r.cpu_reasons:
        parts += ["<h2>Operators on the CPU</h2>", "<table><tr><th>op</th><th class=\"l\">type</th>"
                  "<th class=\"l\">rule</th><th class=\"l\">why</th><th class=\"l\">fix</th></tr>"]
        parts += [f"<tr><td>{c.op_index}</td><td class=\"l\">{e(c.op)}</td><td class=\"l\"><code>{e(x.rule)}</code></td>"
                  f"<td class=\"l\">{e(x.message)}</td><td class=\"l\">{e(x.fix)}</td></tr>"
                  for c in r.cpu_reasons for x in c.reasons]
        parts.append("</table>")
    parts += ["<h2>Findings</h2>", "<ul>"]
    parts += [f"<li><span class=\"sev-{f.severity.value}\">{e(f.severity.value)}</span> <code>{e(f.rule)}</code>: {e(f.message)}</li>"
              for f in r.findings] or ["<li>none</li>"]
    parts += ["</ul>", "</body></html>"]
    return "\n".join(parts) + "\n"
