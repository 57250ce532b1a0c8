"""A layer's weight streams taken from Vela's own compiled model, checked against hwopt's brick order.

When `hwopt encode` compiles a model with Vela to read its block configurations, the compiled
model already holds every weight stream Vela encoded: re-encoding them in numpy would cost
several times the compile. These streams are located by replaying the command stream
(`vela_streams`), matched one for one to the streams hwopt's order plans for the layer
(same count, same order: OFM-depth slice, then core or weight decoder), and checked:
an FWD stream, and a standard stream of up to two palette sections (256 Ki weights), is
decoded and compared with the layer's weights in brick order; a longer standard stream must
open with the slice header and palette that hwopt's encoder derives from those weights
(Vela's decoder returns a Python list: decoding costs more than Vela's encoding did). A layer whose streams do not match the
plan is left to hwopt's own encoder.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from hwopt import isolation
from hwopt.errors import NativeCodeError
from hwopt.format.tflite_io import read_model
from hwopt.targets.ethos_u import fwd, mlw
from hwopt.targets.ethos_u import weight_layout as wl
from hwopt.targets.ethos_u import weights as wu
from hwopt.targets.ethos_u.vela_streams import CommandStreamError, LayerStreams, layer_streams

log = logging.getLogger(__name__)

DECODE_LIMIT = 2 * mlw.SECTION  # weights per stream decoded whole; longer streams: header and palette


@dataclass(frozen=True)
class CompiledStreams:
    """Per input operator (subgraph 0), the weight streams of Vela's compiled model."""

    layers: dict[int, LayerStreams]
    read_only: bytes | memoryview  # a view into the compiled model: the streams taken are views into it too

    def parts(self, op_index: int) -> list[bytes | memoryview] | None:
        layer = self.layers.get(op_index)
        return None if layer is None or not layer.streams else layer.data(self.read_only)


def compiled_streams(compiled: object, *, u85: bool) -> CompiledStreams | None:
    """The weight streams of a Regor compile with its database on (None when they cannot be located)."""
    model_bytes = getattr(compiled, "model", None)
    tables = getattr(getattr(compiled, "opt_database", None), "tables", None)
    if not model_bytes or not tables:
        return None
    out = read_model(bytes(model_bytes))
    if not out.subgraphs:
        return None
    sg = out.subgraphs[0]
    npu = [op for op in sg.operators if op.op.startswith("CUSTOM")]
    # One NPU operator: the database's command-stream offsets are unambiguous only then.
    if len(npu) != 1 or len(npu[0].inputs) < 2:
        return None
    payload_t, ro_t = sg.tensor(npu[0].inputs[0]), sg.tensor(npu[0].inputs[1])
    if payload_t is None or ro_t is None or payload_t.data is None or ro_t.data is None:
        return None
    try:
        located = layer_streams(bytes(payload_t.data), tables, u85=u85)
    except CommandStreamError as exc:
        log.warning("Vela's command stream could not be read (%s); encoding every layer with hwopt", exc)
        return None
    # No copy of the region (as large as the model's weights): the layers' streams stay views into it.
    return CompiledStreams(located, np.ascontiguousarray(ro_t.data).reshape(-1).view(np.uint8).data)


def decoded_whole(elements: int, arch: wl.EthosUArch) -> bool:
    """Whether a layer of `elements` weights may have a standard stream short enough to be decoded whole
    (each NPU core or weight decoder reads a stream of its own): the layers that may need Vela's decoder.
    (A layer Vela cuts into more OFM-depth slices can need it too; the decode then waits for a worker.)"""
    return elements <= DECODE_LIMIT * max(arch.cores, arch.weight_streams)


@dataclass
class PendingDecodes:
    """Standard streams waiting for Vela's decoder, decoded in one worker call for the whole model."""

    owner: int = 0  # the layer the streams added next belong to
    items: list[tuple[int, bytes, bytes]] = field(default_factory=list)  # (owner, stream, weights as int16)

    def add(self, data: wu.StreamBytes, values: np.ndarray) -> None:
        # As int16 bytes: the worker compares them without numpy (it starts faster without it).
        self.add_int16(data, values.astype(np.int16).tobytes())

    def add_int16(self, data: wu.StreamBytes, values: bytes) -> None:
        self.items.append((self.owner, bytes(data), values))  # a copy: the worker's request is pickled

    def failed(self) -> set[int]:
        """The owners with a stream that does not decode to its weights."""
        if not self.items:
            return set()
        try:
            # Vela's legacy decoder, independent of both encoders; it ends the process on a malformed stream.
            results = isolation.call("hwopt.native_calls:mlw_streams_decode_to", [(d, w) for _, d, w in self.items],
                                     library="Vela's weight decoder")
        except NativeCodeError as exc:
            log.error("a weight stream of Vela's compiled model does not decode: %s", exc)
            return {o for o, _, _ in self.items}
        return {o for (o, _, _), ok in zip(self.items, results, strict=True) if not ok}


@dataclass(frozen=True)
class Expected:
    """What one standard stream must hold, from hwopt's side alone: its weight count, depth offset and core,
    and its weights as int16 bytes (a stream decoded whole) or its opening (a longer one)."""

    size: int
    lo: int
    core: int
    weights: bytes | None
    opening: tuple[bool, np.ndarray] | None


def expect(values: np.ndarray, lo: int, core: int) -> Expected:
    if values.size <= DECODE_LIMIT:
        return Expected(int(values.size), lo, core, values.astype(np.int16).tobytes(), None)
    return Expected(int(values.size), lo, core, None, opening(values))


def expect_u55(w: np.ndarray, arch: wl.EthosUArch, config: wl.BlockConfig, *, ifm_bits: int = 8,
               dilation: tuple[int, int] = (1, 1)) -> list[Expected]:
    """The expected streams of one U55/U65 NPU operation, in stream order."""
    return [expect(v, lo, core) for v, lo, core in wu.u55_stream_values(w, arch, config, ifm_bits=ifm_bits,
                                                                        dilation=dilation)]


class Expectations:
    """Expected streams worked out while Vela compiles (from hwopt's own block plan), taken afterwards by each
    NPU operation whose weights and block configuration are the same as the plan's: the same check, sooner
    (one encode: one architecture)."""

    def __init__(self) -> None:
        self._table: dict[tuple[object, ...], list[Expected]] = {}
        self._layers: set[tuple[int, int]] = set()

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, layer: object) -> bool:
        """Whether streams of `layer` (subgraph, operator) were worked out."""
        return layer in self._layers

    @staticmethod
    def _key(layer: tuple[int, int], index: int, count: int, w: np.ndarray, config: wl.BlockConfig,
             dilation: tuple[int, int], ifm_bits: int) -> tuple[object, ...]:
        # What U55/U65 streams depend on (`wu.u55_stream_values`): the weights, traversal, OFM block depth, OFM-depth
        # slices, IFM bits and dilation; the weights are the layer's `index`-th of `count` parts, of that shape.
        slices = tuple(wl.depth_slices(w.shape[0], config))
        return layer, index, count, w.shape, str(w.dtype), config.traversal, config.ofm_block_depth, slices, dilation, \
            ifm_bits

    def add(self, layer: tuple[int, int], parts: list[wu.Part], arch: wl.EthosUArch, ifm_bits: int) -> None:
        """The expected streams of every part (weights, config, stride, dilation) of one layer."""
        for i, (w, config, _, dilation) in enumerate(parts):
            self._table[self._key(layer, i, len(parts), w, config, dilation, ifm_bits)] = expect_u55(
                w, arch, config, ifm_bits=ifm_bits, dilation=dilation)
        self._layers.add(layer)

    def take(self, layer: tuple[int, int], index: int, count: int, w: np.ndarray, config: wl.BlockConfig,
             dilation: tuple[int, int], ifm_bits: int) -> list[Expected] | None:
        return self._table.pop(self._key(layer, index, count, w, config, dilation, ifm_bits), None)

    def take_all(self, layer: tuple[int, int], parts: list[wu.Part], ifm_bits: int) -> list[list[Expected]] | None:
        """The expected streams of every part of `layer`, or None (nothing taken) when one part has none: the
        parts' values are not read, only what the streams depend on besides the weights."""
        keys = [self._key(layer, i, len(parts), w, config, dilation, ifm_bits)
                for i, (w, config, _, dilation) in enumerate(parts)]
        if not all(k in self._table for k in keys):
            return None
        return [self._table.pop(k) for k in keys]


def _standard_ok(parts: list[wu.StreamBytes], values: list[np.ndarray], pending: PendingDecodes) -> bool:
    """Short streams queued for decoding, long ones checked by their opening now."""
    return _expected_ok(parts, [expect(v, 0, 0) for v in values], pending)


def _expected_ok(parts: list[wu.StreamBytes], expected: list[Expected], pending: PendingDecodes) -> bool:
    for d, e in zip(parts, expected, strict=True):
        if e.weights is not None:
            pending.add_int16(d, e.weights)
    return all(opens_with(d, e.opening) for d, e in zip(parts, expected, strict=True) if e.opening is not None)


def opens_like(data: wu.StreamBytes, values: np.ndarray) -> bool:
    """Whether a standard stream opens with the slice header and palette of its first section.

    The fields that do not depend on the parameter search: zero-run mode, new-palette flag,
    direct offset, palette size, palette bit width and entries, all fixed by the weights.
    """
    return opens_with(data, opening(values))


def opening(values: np.ndarray) -> tuple[bool, np.ndarray]:
    """The zero-run mode and the header and palette bits a standard stream of `values` opens with."""
    pal = mlw.make_palette(values[:mlw.SECTION])
    head = mlw.BitWriter()
    head.put([pal.direct_offset, max(0, pal.size - 1), pal.bits - 2], [5, 5, 3])
    if pal.size:
        head.put(np.array(pal.entries), pal.bits)
    n_bits = head.bit_length()
    return pal.zero_runs, np.unpackbits(np.frombuffer(head.to_bytes(1, 0), dtype=np.uint8), bitorder="little")[:n_bits]


def opens_with(data: wu.StreamBytes, start: tuple[bool, np.ndarray]) -> bool:
    zero_runs_want, want = start
    n_bits = int(want.size)
    got = np.unpackbits(np.frombuffer(data[:(23 + n_bits + 7) // 8], dtype=np.uint8), bitorder="little")
    if got.size < 23 + n_bits:
        return False
    zdiv = int(got[0]) | int(got[1]) << 1 | int(got[2]) << 2
    zero_runs = zdiv != mlw.ZDIV_DISABLE
    return bool(zero_runs == zero_runs_want and got[22] == 1 and np.array_equal(got[23:23 + n_bits], want))


def adopt_u55(w: np.ndarray, arch: wl.EthosUArch, config: wl.BlockConfig, parts: list[wu.StreamBytes], pending: PendingDecodes,
              *, ifm_bits: int = 8, dilation: tuple[int, int] = (1, 1),
              expected: list[Expected] | None = None) -> wu.EncodedWeights | None:
    """Vela's U55/U65 streams for one NPU operation (the first of `parts`), or None when they do not fit hwopt's plan;
    `expected`: the operation's expected streams when already worked out (`Expectations`)."""
    plan = expected if expected is not None else expect_u55(w, arch, config, ifm_bits=ifm_bits, dilation=dilation)
    if len(parts) < len(plan):
        return None
    parts = parts[:len(plan)]
    streams = tuple(wu.Stream(data, e.size, e.lo, e.core) for data, e in zip(parts, plan, strict=True))
    ok = _expected_ok(parts, plan, pending)
    total = sum(len(p) for p in parts)
    return wu.EncodedWeights(streams, wl.WeightFormat.DEFAULT, config, ok, total)


def adopt_u85(w: np.ndarray, arch: wl.EthosUArch, config: wl.BlockConfig, parts: list[wu.StreamBytes], pending: PendingDecodes,
              *, fast: bool, sparse: bool, ifm_bits: int = 8, stride: tuple[int, int] = (1, 1),
              dilation: tuple[int, int] = (1, 1)) -> wu.EncodedWeights | None:
    """Vela's U85 streams for one NPU operation (standard: one per weight decoder and slice; FWD: one per
    slice), taken from the start of `parts`, or None."""
    slices = list(wu.u85_slice_orders(w, arch, config, ifm_bits=ifm_bits, stride=stride, dilation=dilation,
                                      sparse=sparse))
    streams: list[wu.Stream] = []
    ok = True
    if fast:
        if len(parts) < len(slices):
            return None
        parts = parts[:len(slices)]
        block = wu.fwd_block(arch, config, ifm_bits, sparse)
        for data, (lo, orders) in zip(parts, slices, strict=True):
            lengths = [int(o.size) for o in orders]
            try:  # FWD decodes in numpy at memory speed: every stream is decoded whole
                back = fwd.decode(data, lengths, block=block)
                ok = ok and all(np.array_equal(a, b) for a, b in zip(back, orders, strict=True))
            except fwd.FwdError:
                ok = False
            streams.append(wu.Stream(data, sum(lengths), lo, 0))
        fmt = wl.WeightFormat.FAST_SPARSE if sparse else wl.WeightFormat.FAST
    else:
        plan = [(values, lo, s) for lo, orders in slices for s, values in enumerate(orders)]
        if len(parts) < len(plan):
            return None
        parts = parts[:len(plan)]
        ok = _standard_ok(parts, [values for values, _, _ in plan], pending)
        streams = [wu.Stream(data, int(values.size), lo, s) for data, (values, lo, s) in zip(parts, plan, strict=True)]
        fmt = wl.WeightFormat.DEFAULT_SPARSE if sparse else wl.WeightFormat.DEFAULT
    total = sum(len(p) for p in parts)
    return wu.EncodedWeights(tuple(streams), fmt, config, ok, total, total if fast else None)


def adopt_layer(parts: list[tuple[np.ndarray, wl.BlockConfig, tuple[int, int], tuple[int, int]]],
                arch: wl.EthosUArch, ifm_bits: int, vela_parts: list[wu.StreamBytes], vela_fast: bool,
                pending: PendingDecodes, *, known: list[list[Expected]] | None = None) -> list[wu.EncodedWeights] | None:
    """Vela's streams of a layer split over its NPU operations (weights, config, stride, dilation of
    each), or None when they do not match hwopt's plan: count, order, fast format. `known`: the U55/U65
    expected streams of every part already worked out (`Expectations.take_all`); the parts' values are
    then not read."""
    out: list[wu.EncodedWeights] = []
    used = 0
    for i, (part_w, config, stride, dilation) in enumerate(parts):
        fmt = config.weight_format or wl.WeightFormat.DEFAULT
        rest = vela_parts[used:]
        if arch.is_u85:
            enc = adopt_u85(part_w, arch, config, rest, pending, fast=fmt.fast, sparse=fmt.sparse, ifm_bits=ifm_bits,
                            stride=stride, dilation=dilation)
        else:
            enc = adopt_u55(part_w, arch, config, rest, pending, ifm_bits=ifm_bits, dilation=dilation,
                            expected=known[i] if known is not None else None)
        if enc is None:
            return None
        out.append(enc)
        used += len(enc.streams)
    if used != len(vela_parts) or any(e.fmt.fast for e in out) != vela_fast:
        return None
    return out
