"""Ethos-U weight streams: layers encoded in the NPU's brick order, and their encoded size.

Streams are encoded by hwopt's own encoders, which make Vela 5.x's choices (`mlw` for the
standard stream, `fwd` for U85 fast weights), one stream per OFM-depth slice and per core
(U55/U65) or weight decoder (U85), in the brick order of `weight_layout`, and decoded again
with Vela's legacy decoder `ethosu.mlw_codec.decode` to check them.

The block configuration (traversal, OFM block depth, depth slices, U85 weight format) is
a scheduler decision: `block_plan` takes it from hwopt's block searches (the default, Vela's
choice without a compile), `vela_blocks` reads the configuration Vela chose from its
optimisation database, and `default_config` is a shape rule for layers neither covers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from hwopt import isolation
from hwopt.analysis.stats import value_counts
from hwopt.targets.ethos_u import fwd, mlw
from hwopt.targets.ethos_u.u85_perf import weight_decode_cycles
from hwopt.targets.ethos_u.weight_layout import (
    DEFAULT_OFM_BLOCK_DEPTH,
    BlockConfig,
    EthosUArch,
    Traversal,
    WeightFormat,
    decomposition,
    depth_slices,
    u55_order,
    u85_order,
)
from hwopt.targets.geometry import round_up
from hwopt.targets.target import Target

log = logging.getLogger(__name__)

#: A stream's bytes: hwopt's encoder makes bytes; Vela's streams are views into its compiled model.
StreamBytes = bytes | memoryview


@dataclass(frozen=True)
class Stream:
    """One encoded weight stream (one OFM-depth slice of one core / decoder)."""

    data: StreamBytes = field(repr=False)
    weights: int  # coded weights, zero padding included
    depth_offset: int
    core: int


@dataclass(frozen=True)
class EncodedWeights:
    """A layer's weight streams and whether they decode back to the reordered weights."""

    streams: tuple[Stream, ...]
    fmt: WeightFormat
    config: BlockConfig
    roundtrip_ok: bool
    default_bytes: int  # size of the standard stream (U85: the alternative to FWD)
    fast_bytes: int | None = None  # U85 FWD size when FWD is allowed

    @property
    def encoded_bytes(self) -> int:
        return sum(len(s.data) for s in self.streams)

    @property
    def coded_weights(self) -> int:
        return sum(s.weights for s in self.streams)


def choose_traversal(ifm_depth: int, kernel_elements: int, ifm_bits: int, depthwise: bool) -> Traversal:
    """U55/U65 traversal rule: part-kernel-first for shallow IFMs or when it uses the MACs better."""
    if depthwise:
        return Traversal.DEPTHWISE
    if ifm_depth <= 8:
        return Traversal.PART_KERNEL
    depth_util = ifm_depth / round_up(ifm_depth, 32 if ifm_bits == 8 else 16)
    part_util = ifm_depth * kernel_elements / (
        round_up(ifm_depth, 8) * round_up(kernel_elements, 4 if ifm_bits == 8 else 2))
    return Traversal.PART_KERNEL if part_util > depth_util else Traversal.DEPTH_FIRST


def default_config(arch: EthosUArch, ohwi_shape: tuple[int, ...], *, depthwise: bool, ifm_bits: int = 8) -> BlockConfig:
    """The size rule: Vela's traversal choice, OFM block depth 16 (per core pair), one depth slice.

    Block depth and slicing move encoded sizes by well under 1% on real models (each slice
    only restarts the palette), so a fixed depth stands in for the scheduler's search.
    """
    o, h, w, i = ohwi_shape
    if arch.is_u85:
        if depthwise:
            trav = Traversal.DEPTHWISE
        else:
            trav = Traversal.DEPTH_FIRST if h * w == 1 and i > 16 else Traversal.PART_KERNEL
        ub = arch.ofm_ublock_depth
        ifm_block = 16 if trav is Traversal.PART_KERNEL else (min(round_up(i, 16), 64) if trav is Traversal.DEPTH_FIRST else 1)
        return BlockConfig(trav, max(ub, min(round_up(o, ub), 32)), None, ifm_block, ub)
    trav = choose_traversal(i, h * w, ifm_bits, depthwise)
    return BlockConfig(trav, DEFAULT_OFM_BLOCK_DEPTH)


def decode_standard(data: StreamBytes) -> np.ndarray:
    """Decode a standard weight stream with Vela's legacy decoder (an independent implementation).

    The decoder is native code: it runs in the isolation worker, so a crash there is an error line.
    """

    return isolation.call("hwopt.targets.ethos_u.weights:_decode_local", bytes(data),  # type: ignore[no-any-return]
                          library="Vela's weight decoder")


def _decode_local(data: bytes) -> np.ndarray:
    from ethosu import mlw_codec

    return np.asarray(mlw_codec.decode(bytearray(data)), dtype=np.int32)


def _standard_stream(values: np.ndarray) -> tuple[bytes, bool]:
    """The stream and whether Vela's legacy decoder reads the weights back from it.

    Streams of up to two sections are decoded whole. Longer ones are checked on their first
    and last sections cut out of the packed bytes (each section restarts the palette, so it
    decodes alone): the stream's start, its end and EOS marker, at a fixed cost per stream.
    """
    from ethosu import mlw_codec

    # Compared as Python lists: the decoder returns one, and converting it costs more than the comparison.
    if values.size <= 2 * mlw.SECTION:
        data = mlw.encode(values)
        return data, mlw_codec.decode(bytearray(data)) == values.tolist()
    data, starts = mlw.encode_sections(values)
    n = len(starts) - 1
    ok = True
    for k in (0, n - 1):
        part = mlw.section_stream(data, starts[k], starts[k + 1])
        want = values[k * mlw.SECTION:(k + 1) * mlw.SECTION]
        ok = ok and mlw_codec.decode(bytearray(part)) == want.tolist()
    return data, ok


def u55_stream_values(w: np.ndarray, arch: EthosUArch, config: BlockConfig, *, ifm_bits: int = 8,
                      dilation: tuple[int, int] = (1, 1)) -> Iterator[tuple[np.ndarray, int, int]]:
    """(weights in brick order, depth offset, core) of each U55/U65 stream of a layer, in stream order."""
    decomp = decomposition(dilation)
    for lo, hi in depth_slices(w.shape[0], config):
        for core in range(arch.cores):
            sub = w[lo:hi][core::arch.cores]
            if sub.shape[0] == 0:
                continue
            depth = (config.ofm_block_depth + arch.cores - 1 - core) // arch.cores
            yield (u55_order(sub, ifm_ublock=arch.ifm_ublock_depth, ofm_ublock=arch.ofm_ublock_depth,
                             ofm_block=depth, traversal=config.traversal, ifm_bits=ifm_bits, decomp=decomp), lo, core)


def encode_u55(w: np.ndarray, arch: EthosUArch, config: BlockConfig, *, ifm_bits: int = 8,
               dilation: tuple[int, int] = (1, 1)) -> EncodedWeights:
    """Encode OHWI zero-point-corrected weights for U55/U65: `u55_order`, then `mlw.encode`.

    One stream per OFM-depth slice and core; on multi-core configurations OFM channels are
    interleaved across cores (core c takes c, c+cores, ...) and the block depth is split.
    Every stream is decoded again and compared with its reordered weights.
    """
    streams = []
    ok = True
    for values, lo, core in u55_stream_values(w, arch, config, ifm_bits=ifm_bits, dilation=dilation):
        data, same = _standard_stream(values)
        if not same:
            log.error("U55 weight stream round trip failed (slice %d, core %d)", lo, core)
        ok = ok and same
        streams.append(Stream(data, int(values.size), lo, core))
    total = sum(len(s.data) for s in streams)
    return EncodedWeights(tuple(streams), WeightFormat.DEFAULT, config, ok, total)


def fwd_allowed(config: BlockConfig) -> bool:
    """U85 allows FWD for convolutions and fully connected layers, not for depthwise."""
    return config.traversal is not Traversal.DEPTHWISE


def is_sparse_2_4(w: np.ndarray) -> bool:
    """Vela's 2:4 test: every aligned group of 4 input channels has ≥ 2 zeros, values in ±127."""
    o, h, wd, i = w.shape
    if i == 0 or np.abs(w).max(initial=0) > 127:
        return False
    pad = (-i) % 4
    g = np.concatenate([w, np.zeros((o, h, wd, pad), dtype=w.dtype)], axis=3).reshape(o, h, wd, -1, 4)
    return bool(((g == 0).sum(axis=4) >= 2).all())


def fwd_block(arch: EthosUArch, config: BlockConfig, ifm_bits: int, sparse: bool) -> int:
    """Interleave granule of an FWD stream shared by several weight decoders (Vela's block size)."""
    pk = config.traversal is Traversal.PART_KERNEL
    ifm16 = ifm_bits == 16
    ifm_ub = 8 if (pk and ifm16 and not sparse) else config.ifm_block_depth
    rnd = (5 if not ifm16 and not sparse else 10) if pk else 1
    return max(1, (config.ofm_ublock_depth or arch.ofm_ublock_depth) * ifm_ub * rnd // arch.weight_streams)


def u85_slice_orders(w: np.ndarray, arch: EthosUArch, config: BlockConfig, *, ifm_bits: int = 8,
                     stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1),
                     sparse: bool = False) -> Iterator[tuple[int, list[np.ndarray]]]:
    """(depth offset, weights in U85 order per weight decoder) of each OFM-depth slice of a layer."""
    for lo, hi in depth_slices(w.shape[0], config):
        sub = w[lo:hi]
        yield lo, [u85_order(sub, arch=arch, config=config, stream=s, ifm_bits=ifm_bits, stride=stride,
                             dilation=dilation, sparse=sparse) for s in range(arch.weight_streams)]


def encode_u85(w: np.ndarray, arch: EthosUArch, config: BlockConfig, *, ifm_bits: int = 8,
               stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1),
               allow_fast: bool = True, target: Target | None = None) -> EncodedWeights:
    """Encode OHWI weights for U85: standard streams (one per weight decoder) or one FWD stream.

    With Vela's configuration the format is Vela's (`config.weight_format`). Without it the
    rule takes the 2:4-sparse order when the weights pass Vela's sparsity test, and FWD as
    Vela's default (Performance) strategy picks it when `target` is given (`fast_wins`), else
    as its Size strategy does: when the estimated size `32 + N/d` (d = 4 for ≤4 distinct
    values, 2 for ≤16, else 1) is below the standard streams' size. Only the chosen format is
    encoded (the FWD size is exact without encoding it).
    """
    fmt = config.weight_format
    dw = not fwd_allowed(config)
    sparse = fmt.sparse if fmt is not None else (not dw and is_sparse_2_4(w))
    want_std = fmt is None or not fmt.fast
    want_fast = (fmt is None and allow_fast and not dw) or (fmt is not None and fmt.fast)
    slices = list(u85_slice_orders(w, arch, config, ifm_bits=ifm_bits, stride=stride, dilation=dilation,
                                   sparse=sparse))
    std: list[Stream] = []
    ok_std = True
    if want_std:
        for lo, orders in slices:
            for s, values in enumerate(orders):
                data, ok = _standard_stream(values)
                ok_std = ok_std and ok
                std.append(Stream(data, int(values.size), lo, s))
    fast_est = fast_total = 0
    if want_fast:
        for _, orders in slices:
            allv = np.concatenate(orders) if orders else np.zeros(0, dtype=np.int32)
            if not fwd.can_encode(allv):
                want_fast = False
                break
            distinct = int(value_counts(allv).size)
            fast_est += fwd.estimated_size(int(allv.size), distinct)
            mode = fwd.FwdMode.RAW if sparse or distinct > fwd.LUT_ENTRIES else fwd.choose_mode(distinct)
            fast_total += fwd.encoded_size(int(allv.size), mode)
    if fmt is not None and fmt.fast and not want_fast:
        log.warning("Vela chose fast weights but the weights do not fit FWD; using the standard format")
        return encode_u85(w, arch, replace(config, weight_format=WeightFormat.DEFAULT), ifm_bits=ifm_bits,
                          stride=stride, dilation=dilation)
    std_total = sum(len(s.data) for s in std)
    if fmt is None:
        if target is not None and want_fast and not sparse:
            use_fast = fast_wins(target, w, std_total, fast_est, fast_total)
        else:
            use_fast = want_fast and fast_est < std_total
        fmt = (WeightFormat.FAST_SPARSE if sparse else WeightFormat.FAST) if use_fast else (
            WeightFormat.DEFAULT_SPARSE if sparse else WeightFormat.DEFAULT)
    if not fmt.fast:
        return EncodedWeights(tuple(std), fmt, config, ok_std, std_total, fast_total if want_fast else None)
    block = fwd_block(arch, config, ifm_bits, sparse)
    fast: list[Stream] = []
    ok_fast = True
    for lo, orders in slices:
        enc = fwd.encode(orders, block=block, no_lut=sparse)
        back = fwd.decode(enc.data, enc.lengths, block=block)
        ok_fast = ok_fast and all(np.array_equal(a, b) for a, b in zip(back, orders, strict=True))
        fast.append(Stream(enc.data, enc.weights, lo, 0))
    fast_total = sum(len(s.data) for s in fast)
    return EncodedWeights(tuple(fast), fmt, config, ok_fast and ok_std, std_total if std else fast_total, fast_total)


def fast_wins(target: Target, w: np.ndarray, std_bytes: int, fast_estimate: int, fast_bytes: int) -> bool:
    """Vela's Performance-strategy choice of the fast format for dense weights: it is tried only when
    its decode time at the estimated size beats the standard stream's, and taken when its decode
    time at its real size does (ties keep the standard format, tried first)."""
    n = int(w.size)
    zeros = n - int(np.count_nonzero(w))
    distinct = int(value_counts(w.reshape(-1)).size)

    def cycles(encoded: int, fast: bool) -> int:
        return weight_decode_cycles(target, n, zeros, distinct, encoded, target.const_memory, fast)

    default = cycles(std_bytes, False)
    return cycles(fast_estimate, True) < default and cycles(fast_bytes, True) < default


Part = tuple[np.ndarray, BlockConfig, tuple[int, int], tuple[int, int]]  # OHWI weights, config, stride, dilation


def encode_parts(parts: list[Part], arch: EthosUArch, ifm_bits: int, target: Target | None = None) -> list[EncodedWeights]:
    """hwopt's encoding of each NPU operation's weights of one layer (pure: the encode engine runs it
    in its own process or in the isolation worker, whichever is free)."""
    return [encode_u85(w, arch, c, ifm_bits=ifm_bits, stride=s, dilation=d, target=target) if arch.is_u85 else
            encode_u55(w, arch, c, ifm_bits=ifm_bits, dilation=d) for w, c, s, d in parts]


def arch_of(target: Target) -> EthosUArch:
    """The weight-stream parameters of an Ethos-U target."""
    npu = target.npu
    family = target.family.value.replace("ethos-", "")
    alts: Sequence[tuple[int, int, int]] = npu.alt_ofm_ublocks
    return EthosUArch(family=family, macs=int(npu.macs), cores=int(npu.cores), ifm_ublock_depth=int(npu.ifm_ublock[2]),
                      ofm_ublock_depth=int(npu.ofm_ublock[2]), weight_streams=int(npu.weight_streams),
                      u85_ofm_ublock_depths=tuple(int(a[2]) for a in alts))
