"""Helpers shared by the subcommands: JSON output, rich consoles, findings tables."""

from __future__ import annotations

import contextlib
import sys
import threading
from typing import Any

from hwopt.analysis.deflate import DeflateMethod, DeflateSize
from hwopt.records import Finding, Severity, dumps

SEVERITY_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def console(stderr: bool = False) -> Any:
    """A rich Console; plain text (no colour codes) when the stream is not a terminal."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 160)


def warm_tables() -> None:
    """Load rich's table code and fill its caches on a side thread while the command works (a Vela compile
    runs meanwhile in the worker), so the report's table costs only its own rendering at the end."""

    def warm() -> None:
        with contextlib.suppress(Exception):  # only a head start: the table is rendered the same way without it
            import io

            from rich.console import Console
            from rich.table import Table

            table = Table(show_edge=False, pad_edge=False)
            for just in ("right", "left", "center"):
                table.add_column("c", justify=just)  # type: ignore[arg-type]
            table.add_row("0", "[yellow]x: y[/]", "[red]ok[/]")
            Console(file=io.StringIO(), highlight=False, soft_wrap=False, width=160).print(table)

    threading.Thread(target=warm, name="hwopt-warm-tables", daemon=True).start()


def print_json(report: Any) -> None:
    sys.stdout.write(dumps(report))


def print_findings(con: Any, findings: list[Finding]) -> None:
    if not findings:
        con.print("[green]no findings[/green]")
        return
    for f in findings:
        where = f" [dim](subgraph {f.subgraph}, op {f.op_index})[/dim]" if f.op_index is not None else ""
        con.print(f"[{SEVERITY_STYLE[f.severity]}]{f.severity.value:7}[/] {f.rule}: {f.message}{where}", markup=True)


def fmt_int(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def fmt_pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def fmt_deflate(size: DeflateSize) -> str:
    """A DeflateSize as text: `3,395,875 bytes`, or `~3,395,875 bytes (sampled, within 0.55%)`."""
    if size.method is DeflateMethod.EXACT:
        return f"{size.bytes:,} bytes"
    return f"~{size.bytes:,} bytes (sampled, within {100 * size.max_error:.2f}%)"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.2f} MiB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.1f} KiB"
    return f"{n} B"
