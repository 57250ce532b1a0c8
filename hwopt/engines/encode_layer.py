"""One weight layer's encoding record and what every family's encoder shares: which layers the NPU
weight decoders take, the stream layout, and the symbol statistics set against the order-0 entropy bound."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hwopt.analysis.layers import WeightLayer, zero_corrected_tensor
from hwopt.analysis.stats import entropy_from_counts, value_counts
from hwopt.ir import DType, Model, Tensor
from hwopt.records import OpRef
from hwopt.targets.geometry import byte_histogram

NPU_WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")
INT_WEIGHTS = (DType.INT8, DType.UINT8)


@dataclass(frozen=True)
class StreamInfo:
    """Where one stream of a layer sits in its emitted file."""

    offset: int
    length: int
    weights: int  # coded weights, padding included
    core: int
    depth_offset: int


@dataclass(frozen=True)
class LayerEncoding(OpRef):
    """One weight layer: sizes, structure, the bound, and whether its round trip held."""

    weight_tensor: str
    shape: list[int]
    dtype: str
    encodable: bool
    reason: str | None
    elements: int
    raw_bytes: int
    encoded_bytes: int
    bits_per_weight: float
    entropy_bits_per_weight: float
    entropy_ratio: float | None  # bits/weight over the order-0 entropy bound
    sparsity: float
    distinct_values: int
    format: str | None  # U85: Default / Fast; U55/U65: Default; N78: N78
    traversal: str | None
    block_source: str | None
    coded_weights: int  # weights in the streams, NPU zero padding included
    streams: list[StreamInfo]
    roundtrip_ok: bool
    vela_encoded_bytes: int | None = None
    vela_format: str | None = None
    stream_source: str | None = None  # "vela": taken from Vela's compiled model; "hwopt": hwopt's encoder
    block_note: str | None = None  # what hwopt's block plan cannot know of Vela's streams (block source "search")
    _data: bytes | memoryview = field(default=b"", repr=False, compare=False)  # the streams, end to end

    def __getstate__(self) -> dict[str, object]:
        """Pickled (and deep-copied) with its streams as bytes: a view into Vela's compiled model cannot be."""
        state = dict(self.__dict__)
        state["_data"] = bytes(self._data)
        return state


def not_encodable(layer: WeightLayer, model: Model, reason: str) -> LayerEncoding:
    t = layer.weights(model)
    return LayerEncoding(layer.subgraph, layer.op_index, layer.op, t.name, list(t.shape), t.dtype.label, False, reason,
                         t.elements, t.data.nbytes if t.data is not None else 0, 0, 0.0, 0.0, None, 0.0, 0, None,
                         None, None, 0, [], True)


def weight_problem(layer: WeightLayer, model: Model) -> str | None:
    t = layer.weights(model)
    if t.dtype.is_float:
        return f"{t.dtype.label} weights (not quantized)"
    if t.dtype not in INT_WEIGHTS:
        return f"{t.dtype.label} weights (the NPU weight decoders take int8/uint8)"
    if layer.op not in NPU_WEIGHT_OPS:
        return f"{layer.op} has no NPU weight stream"
    return None


def pack_streams(parts: list[tuple[bytes | memoryview, int, int, int]]) -> tuple[bytes | memoryview, list[StreamInfo]]:
    """The streams end to end (one stream: itself, not copied) and where each sits."""
    infos, off = [], 0
    for data, weights, core, depth in parts:
        infos.append(StreamInfo(off, len(data), weights, core, depth))
        off += len(data)
    return (parts[0][0] if len(parts) == 1 else b"".join(p[0] for p in parts)), infos


#: Weights counted per histogram call (np.bincount widens its input to 8-byte integers); even, so
#: `byte_histogram` counts each block two bytes at a time.
HIST_BLOCK = 1 << 20


def symbol_counts(t: Tensor, corrected: np.ndarray | None) -> tuple[np.ndarray, int]:
    """Occurrences of each distinct corrected weight, and how many are zero (`corrected` None: the
    int32 copy is made only when the raw bytes cannot give the counts)."""
    raw = raw_symbol_counts(t)
    if raw is not None:
        return raw
    if corrected is None:
        corrected = zero_corrected_tensor(t)
    return value_counts(corrected), int(corrected.size - np.count_nonzero(corrected))


def raw_symbol_counts(t: Tensor) -> tuple[np.ndarray, int] | None:
    """`symbol_counts` from the raw bytes alone, where that is possible (else None).

    When all channels share one zero point the correction only relabels the values, so one
    256-bin histogram of the raw bytes gives the same counts without touching the int32 copy.
    """
    data, q = t.data, t.quantization
    zp = q.zero_point.reshape(-1) if q is not None else np.zeros(1, dtype=np.int64)
    if data is not None and data.dtype.itemsize == 1 and data.size and (zp.size == 0 or (zp == zp[0]).all()):
        flat = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        hist = sum((byte_histogram(flat[i : i + HIST_BLOCK]) for i in range(0, flat.size, HIST_BLOCK)),
                   np.zeros(256, dtype=np.int64))
        zero_code = (int(zp[0]) if zp.size else 0) & 0xFF  # the byte that holds the zero point
        return hist[hist > 0], int(hist[zero_code])
    return None


def finish(layer: WeightLayer, model: Model, corrected: np.ndarray | None, data: bytes | memoryview, streams: list[StreamInfo],
           *, fmt: str, traversal: str | None, source: str | None, coded: int, ok: bool,
           vela: tuple[int, str] | None = None, stream_source: str | None = None,
           symbols: tuple[np.ndarray, int] | None = None, note: str | None = None) -> LayerEncoding:
    t = layer.weights(model)
    n = int(t.elements)
    bpw = 8.0 * len(data) / n if n else 0.0
    counts, zeros = symbols or symbol_counts(t, corrected)  # one histogram: entropy, distinct values and zeros
    ent = entropy_from_counts(counts, n)
    return LayerEncoding(
        layer.subgraph, layer.op_index, layer.op, t.name, list(t.shape), t.dtype.label, True, None, n,
        t.data.nbytes if t.data is not None else n, len(data), bpw, ent, (bpw / ent) if ent > 0 else None,
        float(zeros) / n if n else 0.0, int(counts.size), fmt, traversal,
        source, coded, streams, ok, vela[0] if vela else None, vela[1] if vela else None, stream_source, note, data)
