"""Work a command starts right after its flags are parsed, before its engines load.

`hwopt compile`, the Ethos-U `hwopt encode` (`--blocks vela`, its default) and `hwopt estimate` (the
Vela engine, its Ethos-U default) compile the model with Vela in the isolation worker; loading
hwopt's engines and reading the model take about as long as a small model's compile. Started
here, the compile runs on the other core while the command loads, and the engine takes its
result (hwopt.targets.ethos_u.vela_start). Each function is best-effort: on
any problem it starts nothing, and the command then meets and reports it as it always did.
"""

from __future__ import annotations

import argparse
import contextlib
import mmap
import os
from pathlib import Path

from hwopt import isolation, shared_memory
from hwopt.errors import HwoptError, ModelFormatError
from hwopt.fileio import input_stat, read_input_file
from hwopt.targets import resolve_target
from hwopt.targets.ethos_u import vela_start


def read_input_shared(path: str | os.PathLike[str]) -> bytes | mmap.mmap:
    """An input file's bytes, checked as `fileio.read_input_file` checks them, as a read-only mapping of
    a sealed in-memory copy made in the kernel where the system has them (it reaches the isolation
    worker without a copy, and nobody can change it); else, or for an empty file, as bytes."""
    p = Path(path)
    if not shared_memory.supported():
        return read_input_file(p)
    input_stat(p)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)  # a pipe swapped in never blocks the open
    except OSError as exc:
        raise ModelFormatError(f"cannot read {p}: {exc.strerror or exc}") from None
    try:
        st = input_stat(p, os.fstat(fd))  # what was opened is what was checked (no swap in between)
        if st.st_size == 0:
            return b""
        try:
            return shared_memory.map_file(fd, st.st_size)
        except OSError:  # e.g. no memory for the copy, or a file system sendfile cannot read: read it plainly
            return read_input_file(p)
    finally:
        os.close(fd)


def _start(model: str | None, spec: str, *, system_config: str | None = None, memory_mode: str | None = None,
           accelerator: str | None = None) -> None:
    if not model:
        return
    with contextlib.suppress(HwoptError, OSError, ValueError):
        target = resolve_target(spec, system_config=system_config, memory_mode=memory_mode, accelerator=accelerator)
        if target.family.is_ethos_u:
            # Bounded (never a device or an oversized file); with shared memory, a sealed copy made in the
            # kernel that the worker maps as it is, so the compile starts without the model crossing a pipe.
            data = read_input_shared(model) if isolation.shares_memory() else read_input_file(model)
            vela_start.start(data, target)
        else:
            isolation.shutdown()  # the worker the command started for Vela has nothing to do


def start_compile(args: argparse.Namespace) -> None:
    """`hwopt compile` without a pipeline compiles the file as it is: start that compile."""
    if not args.pipeline:
        _start(args.model, args.target, system_config=args.system_config, memory_mode=args.memory_mode,
               accelerator=args.accelerator)


def start_estimate(args: argparse.Namespace) -> None:
    """`hwopt estimate` with the Vela engine (the Ethos-U default) compiles the file as it is: start that compile."""
    if args.engine in (None, "vela"):
        _start(args.model, args.target, system_config=args.system_config, memory_mode=args.memory_mode,
               accelerator=args.accelerator)


def start_encode(args: argparse.Namespace) -> None:
    """The Ethos-U `hwopt encode` (default `--blocks vela`) takes Vela's block configurations and streams from a
    compile: start the compile (the CLI started the worker with the flags). `--blocks rule` compiles nothing."""
    if args.blocks in (None, "vela"):
        _start(args.model, args.target, accelerator=args.accelerator)
