#!/usr/bin/env python3
"""Time every hwopt command against a bare Vela compile at growing model sizes, in one run.

Builds the model ladders of tools/scale_models.py (fully connected 2/8/32 x 1024x1024 and
conv 4/16/64 x 3x3x256x256, half the weights zero), then for every model runs each command
as a whole process, each run paired with a bare
    vela --accelerator-config ethos-u55-128 MODEL
of the same file next to it, the two alternating which runs first (the machine is noisy: a
pair sees the same load; the 1-minute load average is printed with the figures). Prints
per command and size the median wall time, the ratio to the paired Vela medians (and the
ratio of CPU seconds of the process and the children it waited for, which other load
disturbs less), the peak resident memory (os.wait4;
the goal is <= 4x the model file + 150 MB), and the marginal CPU cost per million weights
between consecutive sizes (a command whose cost grows faster than linearly shows a rising
marginal cost). hwopt runs Vela and its codec in a worker process that outlives the command:
this tool makes itself the subreaper of its children (Linux), so the worker, orphaned when
the command exits and ending at once, is reaped here and its CPU seconds are added to the
command's.

With --before DIR (a checkout of earlier code, e.g. `git worktree add DIR <commit>`), every
command also runs from DIR in the same pairs, so a change is measured before and after under
the same load.

Usage: python tools/bench_scale.py [--ladder fc|conv|all] [--runs N] [--only CMD,...]
                                   [--models DIR] [--markdown] [--before DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent

COMMANDS: dict[str, list[str]] = {
    "audit --json": ["audit", "{model}", "--json"],
    "audit --json --exact-deflate": ["audit", "{model}", "--json", "--exact-deflate"],
    "audit --json --no-deflate": ["audit", "{model}", "--json", "--no-deflate"],
    "encode u55-128": ["encode", "{model}", "--target", "ethos-u55-128", "--json"],
    "encode u85-256": ["encode", "{model}", "--target", "ethos-u85-256", "--json"],
    "encode n78-4tops-4ple": ["encode", "{model}", "--target", "ethos-n78-4tops-4ple", "--json"],
    "estimate analytic": ["estimate", "{model}", "--target", "ethos-u55-128", "--engine", "analytic", "--json"],
    "estimate vela": ["estimate", "{model}", "--target", "ethos-u55-128", "--json"],
    "compile u55-128": ["compile", "{model}", "--target", "ethos-u55-128", "-o", "{tmp}/compiled", "--json"],
    "enforce 0.5/16": ["enforce", "{model}", "--sparsity", "0.5", "--clusters", "16", "-o", "{tmp}/enforced.tflite",
                       "--json"],
}
RSS_FACTOR, RSS_FIXED = 4, 150 << 20
PR_SET_CHILD_SUBREAPER = 36
ORPHAN_WAIT_S = 10.0


def build_models(folder: Path, ladder: str) -> list[Path]:
    """The ladder's models, built in a child process: a spawned command's peak RSS starts from this
    process's own (Linux keeps the spawning process's high-water mark across exec), so this one stays small."""
    out = subprocess.run([sys.executable, str(HERE / "scale_models.py"), str(folder), "--ladder", ladder],
                         check=True, capture_output=True, text=True).stdout
    return [Path(line.split(" ", 1)[0]) for line in out.splitlines() if line.strip()]


def become_subreaper() -> bool:
    """Adopt orphaned descendants (hwopt's isolation worker) so their CPU time can be collected."""
    with contextlib.suppress(OSError, AttributeError):
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    return False


def reap_orphans() -> float:
    """CPU seconds of the adopted descendants, waiting (bounded) until they have all exited."""
    cpu = 0.0
    deadline = time.monotonic() + ORPHAN_WAIT_S
    while time.monotonic() < deadline:
        try:
            pid, _, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(0.01)
            continue
        cpu += usage.ru_utime + usage.ru_stime
    return cpu


def tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise SystemExit(f"bench_scale: {name} not found")
    return found


@dataclass
class Cell:
    """Runs of one command on one model, with the Vela runs paired with them."""

    times: list[float] = field(default_factory=list)
    vela: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    vela_cpu: list[float] = field(default_factory=list)
    load: list[float] = field(default_factory=list)  # 1-minute load average before each pair
    rss: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def ratio(self) -> float:
        return self.median / statistics.median(self.vela)

    @property
    def cpu_ratio(self) -> float:
        """CPU seconds (user + system, all threads, waited-for children such as hwopt's isolation
        worker and DEFLATE child) against Vela's: less disturbed by other load."""
        return statistics.median(self.cpu) / statistics.median(self.vela_cpu)


def run(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and peak RSS bytes of one process (spawned, not forked: its RSS is its own)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    err_fd, err_path = tempfile.mkstemp(prefix="bench-scale-", suffix=".err")
    try:
        start = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, env, file_actions=[
            (os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, err_fd, 2)])
        _, status, usage = os.wait4(pid, 0)
        elapsed = time.perf_counter() - start
        orphans = reap_orphans()
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, 1):
            os.lseek(err_fd, 0, os.SEEK_SET)
            tail = os.read(err_fd, 1 << 16).decode(errors="replace")[-600:]
            raise SystemExit(f"bench_scale: {' '.join(argv)} exited {code}: {tail}")
        return elapsed, usage.ru_utime + usage.ru_stime + orphans, usage.ru_maxrss * 1024
    finally:
        os.close(devnull)
        os.close(err_fd)
        os.unlink(err_path)


BEFORE = " [before]"  # the row suffix of a command run from the --before checkout


def measure(models: list[Path], names: list[str], runs: int, env: dict[str, str],
            before: Path | None = None) -> dict[tuple[str, Path], Cell]:
    """Every command on every model, each run paired with a Vela run. With `before` (another checkout)
    each command also runs from there in the same pair, so the two versions see the same load."""
    hwopt, vela = tool("hwopt"), tool("vela")
    cells: dict[tuple[str, Path], Cell] = {}
    with tempfile.TemporaryDirectory(prefix="hwopt-scale-") as tmp:
        env = {**env, "PYTHONPYCACHEPREFIX": str(Path(tmp, "pycache"))}
        sides = [("", env)]
        if before is not None:
            old = env.get("PYTHONPATH", "")
            sides.append((BEFORE, {**env, "PYTHONPATH": os.pathsep.join(p for p in (str(before), old) if p),
                                   "PYTHONPYCACHEPREFIX": str(Path(tmp, "pycache-before"))}))
        for _, side_env in sides:
            run([hwopt, "audit", "--json", str(models[0])], side_env)  # fills the bytecode cache
        for model in models:
            vela_cmd = [vela, "--accelerator-config", "ethos-u55-128", "--output-dir", f"{tmp}/vela", str(model)]
            for name in names:
                for i in range(runs):
                    load = os.getloadavg()[0]
                    order = sides if not i % 2 else sides[::-1]  # alternate which version runs first
                    if i % 2:  # and which side of the pair
                        vt, vcpu, _ = run(vela_cmd, env)
                    results = []
                    for suffix, side_env in order:
                        work = Path(tempfile.mkdtemp(dir=tmp))
                        argv = [hwopt] + [a.format(model=model, tmp=work) for a in COMMANDS[name]]
                        results.append((suffix, run(argv, side_env)))
                        shutil.rmtree(work, ignore_errors=True)
                    if not i % 2:
                        vt, vcpu, _ = run(vela_cmd, env)
                    for suffix, (t, cpu, rss) in results:
                        cell = cells.setdefault((name + suffix, model), Cell())
                        cell.load.append(load)
                        cell.times.append(t)
                        cell.cpu.append(cpu)
                        cell.rss = max(cell.rss, rss)
                        cell.vela.append(vt)
                        cell.vela_cpu.append(vcpu)
                for suffix, _ in sides:
                    cell = cells[(name + suffix, model)]
                    print(f"  {model.name:18s} {name + suffix:37s} {cell.median:7.2f} s  {cell.ratio:5.2f}x vela "
                          f"(CPU {cell.cpu_ratio:5.2f}x)  {cell.rss / 2**20:6.0f} MB  load {min(cell.load):.1f}-"
                          f"{max(cell.load):.1f}", file=sys.stderr, flush=True)
    return cells


def weights_of(model: Path) -> int:
    stem = model.stem
    n = int(stem.split("-")[1])
    return n * (1024 * 1024 if stem.startswith("fc") else 256 * 9 * 256)


def table(models: list[Path], names: list[str], cells: dict[tuple[str, Path], Cell], markdown: bool) -> str:
    sizes = [f"{m.stat().st_size / 1e6:.1f} MB" for m in models]
    head = ["command", *[f"{m.stem} ({s})" for m, s in zip(models, sizes, strict=True)],
            f"vs Vela at {sizes[-1]} (CPU)", "CPU s per M weights (marginal)", "peak RSS / limit"]
    rows = []
    vela_all = {m: [v for n in names for v in cells[(n, m)].vela] for m in models}
    vela_cpu = {m: [v for n in names for v in cells[(n, m)].vela_cpu] for m in models}
    rows.append(["vela (reference)", *[f"{statistics.median(vela_all[m]):.2f} s (CPU {statistics.median(vela_cpu[m]):.2f} s)"
                                       for m in models], "1x", "", ""])
    for name in names:
        cs = [cells[(name, m)] for m in models]
        marg = []
        for (m0, c0), (m1, c1) in zip(zip(models, cs, strict=True), zip(models[1:], cs[1:], strict=True), strict=False):
            marg.append((statistics.median(c1.cpu) - statistics.median(c0.cpu)) / ((weights_of(m1) - weights_of(m0)) / 1e6))
        growth = " → ".join(f"{v:.3f}" for v in marg)
        if len(marg) >= 2:
            growth += "  (linear)" if marg[-1] <= 1.5 * max(marg[0], 0.01) else "  (super-linear)"
        worst = max(c.rss / (RSS_FACTOR * m.stat().st_size + RSS_FIXED) for m, c in zip(models, cs, strict=True))
        rows.append([name, *[f"{c.median:.2f} s ({c.ratio:.2f}x)" for c in cs], f"{cs[-1].ratio:.2f}x ({cs[-1].cpu_ratio:.2f}x)",
                     growth,
                     f"{max(c.rss for c in cs) / 2**20:.0f} MB ({worst:.2f} of limit)"])
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [head, *rows])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ladder", choices=("fc", "conv", "all"), default="fc")
    ap.add_argument("--runs", type=int, default=1, help="runs of each command per model (median)")
    ap.add_argument("--only", default="", help="comma-separated command names (default: all)")
    ap.add_argument("--models", type=Path, help="folder for the ladder models (default: a temporary one)")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--before", type=Path, metavar="DIR", help="a checkout of earlier code: every command also runs "
                    "from it, in the same pairs (rows marked [before])")
    args = ap.parse_args(argv)
    names = [n for n in COMMANDS if not args.only or any(o.strip() and n.startswith(o.strip())
                                                          for o in args.only.split(","))]
    if not names:
        print(f"bench_scale: no command matches {args.only!r}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if not become_subreaper():
        print("bench_scale: cannot adopt orphans here: CPU seconds leave hwopt's isolation worker out", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="hwopt-ladder-") as tmp:
        folder = args.models or Path(tmp)
        ladders = ("fc", "conv") if args.ladder == "all" else (args.ladder,)
        for ladder in ladders:
            models = build_models(folder, ladder)
            cells = measure(models, names, args.runs, env, args.before)
            rows = [n + suffix for n in names for suffix in (("", BEFORE) if args.before is not None else ("",))]
            loads = [v for c in cells.values() for v in c.load]
            print(f"\n{ladder} ladder, median of {args.runs} run(s), each paired with a bare Vela compile; "
                  f"1-minute load average {min(loads):.1f}-{max(loads):.1f} (2 cores: above 2, other work shares them):")
            print(table(models, rows, cells, args.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
