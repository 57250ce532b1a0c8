"""The files of `hwopt compile`: the compiled model, report.json, report.md, report.html and per_layer.csv.

The compile engine returns data; this module renders it and writes the folder atomically
(staged, then swapped in), driven by the CLI and the Python API.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
from collections.abc import Callable
from pathlib import Path

from hwopt.engines.compile import EXAMPLE_MODEL, OUTPUT_FILES, CompileReport, CompileResult, output_name
from hwopt.errors import OutputError
from hwopt.fileio import refuse_inputs, staged_directory
from hwopt.records import dumps
from hwopt.reports.html import compile_html, compile_markdown
from hwopt.targets import Target

CSV_COLUMNS = ("subgraph", "op_index", "op", "name", "placement", "cycles", "npu_cycles", "sram_access_cycles",
               "dram_access_cycles", "on_chip_flash_access_cycles", "off_chip_flash_access_cycles", "bound", "macs",
               "mac_utilisation", "staging_bytes", "encoded_weight_bytes", "weight_format", "sparsity",
               "unique_values", "max_unique_per_channel")


def per_layer_csv(report: CompileReport) -> str:
    """Per-layer rows as CSV with a header; strings quoted (operator names may hold commas)."""
    buf = io.StringIO()
    w = csv.writer(buf, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for la in report.layers:
        row = []
        for col in CSV_COLUMNS:
            v = getattr(la, col)
            row.append("" if v is None else (round(v, 6) if isinstance(v, float) else v))
        w.writerow(row)
    return buf.getvalue()


def compile_inputs(model: str | os.PathLike[str] | None, data: str | os.PathLike[str] | None = None) -> tuple[Path, ...]:
    """The files a compile reads: the model (the bundled example without one) and the data."""
    return (Path(model) if model is not None else EXAMPLE_MODEL, *((Path(data),) if data is not None else ()))


def prepare_output_dir(out_dir: str | os.PathLike[str], model: str | os.PathLike[str] | None, target: Target,
                       data: str | os.PathLike[str] | None = None) -> Path:
    """The output folder, checked before minutes of work: a folder (or nothing yet), and no output
    file landing on an input."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"output path exists and is not a directory: {out}")
    inputs = compile_inputs(model, data)
    refuse_inputs([out / n for n in (output_name(inputs[0], target), *OUTPUT_FILES)], inputs)
    return out


def render_files(result: CompileResult) -> dict[str, bytes]:
    """Every output file of a compile, by name, in the order they are listed."""
    report = result.report
    return {
        report.output_model: result.model_bytes,
        "report.json": dumps(report).encode(),
        "report.md": compile_markdown(report).encode(),
        "report.html": compile_html(report, result.density).encode(),
        "per_layer.csv": per_layer_csv(report).encode(),
    }


def write_compile_outputs(result: CompileResult, out_dir: str | os.PathLike[str], *,
                          data: str | os.PathLike[str] | None = None,
                          progress: Callable[[str], None] | None = None) -> CompileResult:
    """Render and write the compile outputs into `out_dir` all at once (never over an input); the
    result with where they went."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"output path exists and is not a directory: {out}")
    if progress is not None:
        progress("writing the report")
    files = render_files(result)
    with staged_directory(out, protect=compile_inputs(result.report.model, data)) as stage:
        for name, blob in files.items():
            try:
                (stage / name).write_bytes(blob)
            except OSError as exc:  # disk full, quota: the staging folder goes, the directory stays as it was
                raise OutputError(f"cannot write {out / name}: {exc.strerror or exc}") from None
    return dataclasses.replace(result, output_dir=out, files=tuple(files))
