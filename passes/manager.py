"""Graph-pass infrastructure: typed passes, a pipeline-string parser and a verifying pass manager.

A pass is a frozen dataclass whose fields are its options, so a pipeline string such as
`prune{sparsity=0.5,pattern=2:4},cluster{k=16,granularity=stream}` parses into pass objects
and prints back to the same text. Passes are found by name in a lazy registry (modules load
on first use). The manager checks each pass's `requires`/`ensures`, its in-place or
functional contract, and re-verifies the model between passes, naming the pass that broke it.
"""

from __future__ import annotations

import dataclasses
import gc
import importlib
import logging
import re
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from hwopt.errors import HwoptError, PassError, UsageError
from hwopt.format.tflite_io import read_model, serialize
from hwopt.ir import Model
from hwopt.passes.options import OptionSpec, convert_value, format_value, option_specs
from hwopt.targets import Target

log = logging.getLogger(__name__)

# Stats values a pass may report: plain numbers, strings and flat containers of them.
Stat = int | float | str | bool | None | list[Any] | dict[str, Any]


@dataclass(frozen=True)
class PassContext:
    """Run-time inputs a pass may need that are not options: calibration data, the original model."""

    reference: bytes | None = None  # the model as it was before the pipeline (.tflite bytes)
    calibration: dict[str, Any] | None = None  # input name -> array [N, ...] for activation statistics
    target: Target | None = None  # the NPU target the structure is meant for


@dataclass(frozen=True)
class PassResult:
    """What a pass returns: the (possibly new) model, whether it changed, and its statistics."""

    model: Model
    modified: bool
    stats: dict[str, Stat] = field(default_factory=dict)


@dataclass(frozen=True)
class Pass:
    """Base class of passes: subclasses are frozen dataclasses whose fields are the options.

    `in_place` passes mutate and return the model they are given; functional passes return a
    new model and leave their input untouched. Fields whose metadata holds `option=False`
    (such as `context`) are not options and never appear in pipeline strings.
    """

    name: ClassVar[str] = ""
    in_place: ClassVar[bool] = True
    description: ClassVar[str] = ""
    shown: ClassVar[tuple[str, ...]] = ()  # options printed by spec() even at their default

    def requires(self, model: Model) -> None:
        """Raise PassError when the model is not fit for this pass (default: anything goes)."""

    def ensures(self, model: Model) -> None:
        """Raise PassError when the pass's promise does not hold on its output (default: none)."""

    def run(self, model: Model) -> PassResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, model: Model) -> PassResult:
        return self.run(model)

    @classmethod
    def options(cls) -> list[OptionSpec]:
        """The typed options of this pass, in declaration order."""
        return option_specs(cls)

    def spec(self) -> str:
        """This pass as pipeline text (its key options and all non-default ones); parse(spec()) == self."""
        parts = []
        for opt in self.options():
            value = getattr(self, opt.name)
            if value != opt.default or opt.name in self.shown:
                parts.append(f"{opt.name}={format_value(value)}")
        return f"{self.name}{{{','.join(parts)}}}" if parts else self.name

    def with_context(self, context: PassContext) -> Pass:
        """A copy of the pass bound to `context` (for passes that declare a `context` field)."""
        if any(f.name == "context" for f in dataclasses.fields(self)):
            return dataclasses.replace(self, context=context)  # type: ignore[call-arg]
        return self


# --------------------------------------------------------------------------- registry

# name -> "module:Class"; modules are imported only when a pipeline names the pass.
_REGISTRY: dict[str, str] = {
    "prune": "hwopt.passes.prune:PrunePass",
    "cluster": "hwopt.passes.cluster:ClusterPass",
    "repair": "hwopt.passes.repair:RepairPass",
    "bias-correct": "hwopt.passes.bias_correction:BiasCorrectionPass",
}
_LOADED: dict[str, type[Pass]] = {}


def register_pass(name: str, target: str | type[Pass]) -> None:
    """Register a pass class (or a lazy "module:Class" reference) under `name`."""
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
        raise ValueError(f"invalid pass name {name!r}")
    if isinstance(target, str):
        _REGISTRY[name] = target
        _LOADED.pop(name, None)
    else:
        _REGISTRY[name] = f"{target.__module__}:{target.__qualname__}"
        _LOADED[name] = target


def available_passes() -> list[str]:
    return sorted(_REGISTRY)


def get_pass_class(name: str) -> type[Pass]:
    """The pass class registered as `name`; UsageError listing the known passes otherwise."""
    if name in _LOADED:
        return _LOADED[name]
    ref = _REGISTRY.get(name)
    if ref is None:
        raise UsageError(f"unknown pass {name!r} (known passes: {', '.join(available_passes())})")
    module, _, attr = ref.partition(":")
    cls = getattr(importlib.import_module(module), attr)  # lazy: a pass loads when a pipeline names it
    _LOADED[name] = cls
    return typing.cast(type[Pass], cls)


def make_pass(name: str, options: dict[str, str | list[Any]]) -> Pass:
    """Instantiate a registered pass from option text; UsageError on unknown options or bad values."""
    cls = get_pass_class(name)
    specs = {o.name: o for o in cls.options()}
    kwargs = {}
    for key, raw in options.items():
        opt = specs.get(key) or specs.get(key.replace("-", "_"))
        if opt is None:
            known = ", ".join(specs) or "none"
            raise UsageError(f"pass {name!r}: unknown option {key!r} (options: {known})")
        kwargs[opt.name] = convert_value(raw, opt.type, f"pass {name!r} option {opt.name!r}")
    try:
        return cls(**kwargs)
    except HwoptError:
        raise
    except (TypeError, ValueError) as exc:
        raise UsageError(f"pass {name!r}: {exc}") from None


# --------------------------------------------------------------------------- parser

_TOKEN = re.compile(r'\s*(?:(?P<punct>[{}\[\],=])|"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<word>[^\s{}\[\],="]+))')


def _tokens(text: str) -> Iterator[tuple[str, str, int]]:
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            if text[pos:].strip() == "":
                return
            raise UsageError(f"pipeline: unexpected character {text[pos]!r} at position {pos}")
        if m.group("punct"):
            yield "punct", m.group("punct"), m.start("punct")
        elif m.group("quoted") is not None:
            yield "word", re.sub(r"\\(.)", r"\1", m.group("quoted")), m.start()
        elif m.group("word"):
            yield "word", m.group("word"), m.start("word")
        pos = m.end()


class _Parser:
    """Recursive-descent parser of: pipeline := pass ("," pass)*; pass := NAME ["{" [opt ("," opt)*] "}"];
    opt := KEY "=" value; value := WORD | QUOTED | "[" [value ("," value)*] "]"."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = list(_tokens(text))
        self.i = 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, kind: str, value: str | None = None) -> str:
        tok = self.peek()
        if tok is None or tok[0] != kind or (value is not None and tok[1] != value):
            want = repr(value) if value else "a name"
            got = "end of pipeline" if tok is None else f"{tok[1]!r} at position {tok[2]}"
            raise UsageError(f"pipeline: expected {want}, got {got}")
        self.i += 1
        return tok[1]

    def at(self, value: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[0] == "punct" and tok[1] == value

    def value(self) -> str | list[Any]:
        if self.at("["):
            self.take("punct", "[")
            items: list[Any] = []
            while not self.at("]"):
                items.append(self.value())
                if not self.at("]"):
                    self.take("punct", ",")
            self.take("punct", "]")
            return items
        return self.take("word")

    def parse(self) -> list[tuple[str, dict[str, str | list[Any]]]]:
        out: list[tuple[str, dict[str, str | list[Any]]]] = []
        if not self.toks:
            raise UsageError("pipeline: empty pipeline")
        while True:
            name = self.take("word")
            opts: dict[str, str | list[Any]] = {}
            if self.at("{"):
                self.take("punct", "{")
                while not self.at("}"):
                    key = self.take("word")
                    if key in opts:
                        raise UsageError(f"pipeline: option {key!r} given twice for pass {name!r}")
                    self.take("punct", "=")
                    opts[key] = self.value()
                    if not self.at("}"):
                        self.take("punct", ",")
                self.take("punct", "}")
            out.append((name, opts))
            if self.peek() is None:
                return out
            self.take("punct", ",")


def parse_pipeline(text: str) -> list[Pass]:
    """Parse pipeline text into pass objects; UsageError with a clear message on any problem."""
    return [make_pass(name, opts) for name, opts in _Parser(text).parse()]


def format_pipeline(passes: Sequence[Pass]) -> str:
    """Pipeline text of a pass list; `parse_pipeline(format_pipeline(p)) == p`."""
    return ",".join(p.spec() for p in passes)


# --------------------------------------------------------------------------- manager


@dataclass(frozen=True)
class PassRecord:
    """One executed pass as reports show it."""

    name: str
    spec: str
    modified: bool
    stats: dict[str, Stat]


@dataclass(frozen=True)
class PipelineResult:
    model: Model
    modified: bool
    records: list[PassRecord]
    # The model's flatbuffer as the last verification serialized it (None: nothing verified it
    # after the last pass): a caller that needs the bytes takes them instead of serializing again.
    model_bytes: bytes | None = field(default=None, repr=False)


def verify_model(model: Model) -> bytes:
    """Check the IR is a well-formed TFLite model: it serializes, re-reads, and constants fit their shapes.

    Returns the serialized model (the bytes that were re-read)."""
    for sg in model.subgraphs:
        for t in sg.tensors:
            if t.data is None:
                continue
            if tuple(t.data.shape) != tuple(t.shape) and t.elements != t.data.size:
                raise PassError(f"tensor {t.name!r}: data of shape {t.data.shape} does not fit shape {list(t.shape)}")
            if t.dtype.numpy is not None and t.data.dtype != t.dtype.numpy:
                raise PassError(f"tensor {t.name!r}: data of dtype {t.data.dtype} in a {t.dtype.label} tensor")
    data = serialize(model)
    read_model(data)
    # The re-read copy holds reference cycles: collect it now, or a large model's bytes stay alive
    # twice more until the collector happens to run (it counts objects, not bytes). Its objects are
    # new (generations 0 and 1): a young collection frees them without a full pass over every
    # object of the process (~15-40 ms per pass, whatever the model's size).
    gc.collect(1)
    return data


def copy_model(model: Model) -> Model:
    """An independent copy of the model (serialize and re-read), keeping its source path."""
    out = read_model(serialize(model))
    out.path = model.path
    return out


class PassManager:
    """Run passes in order; check contracts and verify the model after every pass."""

    def __init__(self, passes: Sequence[Pass], *, verify: bool = True) -> None:
        self.passes = list(passes)
        self.verify = verify

    def run(self, model: Model) -> PipelineResult:
        records: list[PassRecord] = []
        any_modified = False
        verified: bytes | None = None
        for p in self.passes:
            label = p.spec()
            try:
                p.requires(model)
            except PassError as exc:
                raise PassError(f"pass {label}: precondition failed: {exc}") from None
            try:
                result = p.run(model)
            except HwoptError:
                raise
            except Exception as exc:
                raise PassError(f"pass {label} failed: {type(exc).__name__}: {exc}") from exc
            if not isinstance(result, PassResult):
                raise PassError(f"pass {label} returned {type(result).__name__}, not a PassResult")
            if p.in_place and result.model is not model:
                raise PassError(f"pass {label} is declared in-place but returned a different model object")
            if not p.in_place and result.model is model:
                raise PassError(f"pass {label} is declared functional but returned its input model")
            model = result.model
            verified = None
            if self.verify:
                try:
                    verified = verify_model(model)
                except HwoptError as exc:
                    raise PassError(f"pass {label} left an invalid model: {exc}") from None
            try:
                p.ensures(model)
            except PassError as exc:
                raise PassError(f"pass {label}: postcondition failed: {exc}") from None
            log.info("pass %s: %s", label, "modified" if result.modified else "unchanged")
            records.append(PassRecord(p.name, label, result.modified, dict(result.stats)))
            any_modified = any_modified or result.modified
        return PipelineResult(model, any_modified, records, verified)
