"""The `hwopt` command line: a thin layer over the Python API.

Exit codes: 0 success, 1 findings / failed expectations / failed gate, 2 usage or input
error (one line on stderr, never a traceback), 3 an internal error (a bug in hwopt).
Each subcommand's flags live in hwopt.cli.<command> (`register(subparsers)`, nothing heavy
imported) and its code in hwopt.cli.run_<command>; `main` loads both for the one command
that runs (`hwopt --help` loads every flag module and no engine). A flag module may declare,
through its parser defaults, which isolation worker it needs (`worker`, started right after the flags
are parsed, before the command's engines load; `worker_if` may decline it for a command line), that
its command's code never logs (`logs=False`: `logging` is
not imported) and that it leaves nothing to clean up at exit (`fast_exit=True`: the process
ends as soon as its output is flushed, without tearing the interpreter down).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from hwopt._version import __version__
from hwopt.errors import HwoptError

# Subcommands, in the order `hwopt --help` lists them; each one's flags are in hwopt.cli.<name>.
COMMANDS = ("audit", "targets", "check", "estimate", "encode", "enforce", "compile", "gate", "tree", "sweep", "explore")

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
# New container objects between two young-generation passes of the cyclic collector while a
# command runs (Python's default is 700): loading numpy and the engines and reading a model
# create hundreds of thousands, almost none of them cyclic garbage, and some fifty passes
# over them cost ~5% of an audit. Memory is still freed by reference counting as before.
GC_YOUNG_THRESHOLD = 100_000


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"hwopt: error: {message} (see {self.prog} --help)\n")  # one prefix for every command
        raise SystemExit(EXIT_USAGE)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help layout, sized by `help_width`: argparse builds a formatter for every
    add_argument, and sizing one itself imports shutil (with bz2 and lzma), a share of start-up."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position, help_width() if width is None else width)


def help_width() -> int:
    """The width help text wraps to, as argparse sizes it: $COLUMNS, else the terminal's, else 80; less 2."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns if sys.__stdout__ else 0
        except (AttributeError, ValueError, OSError):
            columns = 0
    return (columns or 80) - 2


def flag_wording(message: str, parser: argparse.ArgumentParser, command: str | None) -> str:
    """An engine error names an option as the Python API does (`max_drop ...`); say the flag instead."""
    first, _, rest = message.partition(" ")
    sub = next((a for a in parser._subparsers._group_actions if isinstance(a, argparse._SubParsersAction)), None) \
        if parser._subparsers is not None else None
    command_parser = sub.choices.get(command) if sub is not None and command else None
    if command_parser is None or not rest:
        return message
    for action in command_parser._actions:
        flags = [o for o in action.option_strings if o.startswith("--")]
        if action.dest == first and flags:
            return f"{flags[0]} {rest}"
    return message


def build_parser(only: str | None = None) -> Parser:
    """The `hwopt` parser with every subcommand's flags; each sets `handler` to "module:function".

    `only` names the one subcommand to register (the one a command line runs): building the
    other parsers costs more of a short command's start-up than reading a MobileNet does.
    """
    parser = Parser(prog="hwopt", description="Audit, enforce, encode, estimate and compile int8 TFLite models for Arm Ethos NPUs.")
    parser.add_argument("--version", action="version", version=f"hwopt {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for command in COMMANDS:
        if only is None or command == only:
            _load(f"hwopt.cli.{command}").register(sub)
    return parser


def chosen_command(argv: Sequence[str]) -> str | None:
    """The subcommand a command line names (its first word that is not an option), if it is one."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in COMMANDS else None


def load_handler(handler: str) -> Callable[[argparse.Namespace], int]:
    """The function a "hwopt.cli.run_<command>:<function>" handler names."""
    module, _, name = handler.partition(":")
    run: Callable[[argparse.Namespace], int] = getattr(_load(module), name)
    return run


def _load(module: str) -> Any:
    """A command's flag module or code module: the one place the CLI loads a command."""
    return importlib.import_module(module)  # lazy: only the command that runs loads its flags and its engines


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `hwopt` console script and of `python -m hwopt`.

    Called without `argv` it is the process's entry point: a command whose flags declare
    `fast_exit` then ends the process itself once its output is flushed (the interpreter's
    teardown of numpy and every loaded module costs ~5 % of a short command and frees nothing
    the operating system would not). With `argv` it returns the exit code, as tests and
    embedding programs expect.
    """
    words = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(chosen_command(words))
    args = parser.parse_args(words)
    fast = argv is None and getattr(args, "fast_exit", False)
    previous_gc = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *previous_gc[1:])
    try:
        code = _run(parser, args)
    finally:
        if not fast:  # restored, the old threshold makes the next allocation collect every young object (~5 % of an audit)
            gc.set_threshold(*previous_gc)
    if fast:
        exit_now(code)
    return code


def configure_logging(verbose: int) -> None:
    """Log records of hwopt's loggers go to stderr as `hwopt: warning: ...` lines; -v/-vv lower the level."""
    import logging

    class WarningFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return f"hwopt: {record.levelname.lower()}: {record.getMessage()}"

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(WarningFormatter())
    root = logging.getLogger("hwopt")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    root.propagate = False


def exit_now(code: int) -> NoReturn:
    """Flush stdout and stderr and end the process with `code`, skipping the interpreter's teardown."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # the reader went away (broken pipe) or the stream is closed
            pass
    os._exit(code)


def wants_worker(args: argparse.Namespace) -> bool:
    """Whether the command's flags ask for the isolation worker at once (`worker`: what it imports first),
    unless their `worker_if` test says this command line compiles nothing (e.g. `encode --blocks rule`)."""
    test = getattr(args, "worker_if", None)
    return bool(getattr(args, "worker", None)) and (test is None or bool(test(args)))


def names_ethos_n(target: object) -> bool:
    """Whether a `--target` value names an Ethos-N target (Vela does not compile for one); a descriptor
    file of one is known only once it is read, by the early step, which then stops the worker."""
    return str(target).lower().startswith("ethos-n")


def _run(parser: Parser, args: argparse.Namespace) -> int:
    """Run the parsed command; every failure becomes an exit code and at most one stderr line."""
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    previous = _install_signal_handlers()
    if getattr(args, "blas_threads", None) and "numpy" not in sys.modules:  # before the command loads numpy
        os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.blas_threads))
    try:
        if wants_worker(args):  # the isolation worker starts and imports Vela/LiteRT while the command loads
            from hwopt import isolation  # lazy: subprocess, pickle and the worker are no part of short commands

            isolation.prestart(*args.worker)
        # A command whose path never logs (its flags say `logs=False`) skips importing logging
        # (~3 ms of a short command); were logging loaded anyway, its records still get the format.
        # After the worker's start: that is on the critical path of a command that compiles.
        if getattr(args, "logs", True) or "logging" in sys.modules:
            configure_logging(args.verbose)
        if getattr(args, "early", None):  # e.g. Vela's compile, started before the command's engines load
            load_handler(args.early)(args)
        return int(load_handler(args.handler)(args))
    except _TerminatedError as exc:  # finally blocks already removed staging folders and temporary files
        sys.stderr.write(f"hwopt: terminated by {signal.Signals(exc.signum).name}\n")
        return 128 + exc.signum
    except HwoptError as exc:
        sys.stderr.write(f"hwopt: error: {flag_wording(str(exc), parser, args.command)}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("hwopt: interrupted\n")
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # a bug: still one line, the traceback only on request
        if os.environ.get("HWOPT_DEBUG"):
            raise
        sys.stderr.write(f"hwopt: internal error: {type(exc).__name__}: {exc} (set HWOPT_DEBUG=1 for a traceback)\n")
        return EXIT_INTERNAL
    finally:
        started = sys.modules.get("hwopt.targets.ethos_u.vela_start")  # a Vela compile nobody took
        if started is not None:
            started.discard()
        running = sys.modules.get("hwopt.isolation")  # never imported: no worker to stop
        if running is not None:
            running.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _TerminatedError(BaseException):
    """SIGTERM/SIGHUP as an exception: unwinding runs every cleanup (staging folders, *.tmp files)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum: int, _frame: object) -> None:
    raise _TerminatedError(signum)


def _install_signal_handlers() -> dict[int, Any]:
    """Turn SIGTERM and SIGHUP into an exception (SIGINT already is one); returns the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous: dict[int, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        previous[sig] = signal.signal(sig, _raise_terminated)
    return previous
