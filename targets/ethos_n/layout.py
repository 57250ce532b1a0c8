"""Ethos-N78 weight-blob geometry shared by the encoder and decoder.

Given the layer shape and the compiler's request (stripe depth, IFM iteration size, algorithm), this
fixes how many streams there are, which filter elements each holds (`raw_order.py`), which group of
which stripe each stream joins, and which SRAM bank each group is loaded into.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from .raw_order import FC_BRICK, fc_raw_order, hwim_raw_order, hwio_raw_order, winograd_raw_order
from .variants import N78Variant

DMA_ALIGN = 16  # the weight DMA moves 16-byte words; groups are padded and interleaved in them


class Algorithm(str, Enum):
    """MCE algorithm the weights are laid out for."""

    DIRECT = "Direct"
    WINOGRAD = "Winograd"


@dataclass(frozen=True, eq=False)
class Geometry:
    """Stream/stripe/group structure of one encoding request."""

    layout: str  # "HWIO" or "HWIM"
    num_ofms: int
    stripe_depth: int
    in_parallel: int  # OFM streams loaded at once: one per OG (HWIO) or per SRAM bank (HWIM)
    num_stripes: int
    num_iterations: int  # IFM-depth iterations per OFM (streams per OFM)
    orders: tuple[np.ndarray, ...]  # raw-order gather index per iteration
    channel_of_ofm: np.ndarray  # TFLite output channel of each encoder OFM index

    def og_of(self, ofm: int) -> int:
        """The OG (compression-state slot) an OFM is decoded on."""
        return (ofm % self.stripe_depth) % self.in_parallel

    @property
    def groups_per_stripe(self) -> int:
        return self.in_parallel * self.num_iterations

    @property
    def num_entries(self) -> int:
        """(stripe, group) streams: every one is padded to the same 16-byte multiple."""
        return self.num_stripes * self.groups_per_stripe

    def entry_of_stream(self) -> np.ndarray:
        """Group index (stripe-major) of every stream, streams in OFM-major, iteration-minor order."""
        s = np.arange(self.num_ofms * self.num_iterations)
        ofm, it = s // self.num_iterations, s % self.num_iterations
        stripe = ofm // self.stripe_depth
        local = (ofm - stripe * self.stripe_depth) * self.num_iterations + it
        return stripe * self.groups_per_stripe + local % self.groups_per_stripe


def dtype_range(dtype: np.dtype) -> tuple[int, int]:
    """Value range of the weight data type (the N78 takes int8 or uint8 weights)."""
    if dtype == np.int8:
        return -128, 127
    if dtype == np.uint8:
        return 0, 255
    raise ValueError(f"weights must be int8 or uint8, got {dtype}")


def per_ofm(value: int | np.ndarray, count: int, name: str) -> np.ndarray:
    """A scalar broadcast to `count` entries (a read-only view: a depthwise layer has an OFM per 9
    weights, so full per-OFM copies of every header field would cost more than the weights), or a
    checked per-OFM vector."""
    arr = np.asarray(value, dtype=np.int64)
    if arr.size == 1:
        return np.broadcast_to(arr.reshape(1), (count,))
    if arr.shape != (count,):
        raise ValueError(f"{name} must be a scalar or have {count} entries, got shape {arr.shape}")
    return arr


def fc_padded(weights: np.ndarray, zero_point: int) -> np.ndarray:
    """Fully connected [1,1,I,O] weights with I padded to a multiple of 1024 by the zero point."""
    if weights.ndim != 4 or weights.shape[:2] != (1, 1):
        raise ValueError("fully connected weights must be 1x1xIxO")
    cin = weights.shape[2]
    extra = -(-cin // FC_BRICK) * FC_BRICK - cin
    if not extra:
        return weights
    pad = np.full((1, 1, extra, weights.shape[3]), zero_point, dtype=weights.dtype)
    return np.concatenate([weights, pad], axis=2)


def geometry(
    shape: tuple[int, ...],
    variant: N78Variant,
    layout: str,
    stride: tuple[int, int],
    padding: tuple[int, int],
    stripe_depth: int | None,
    fully_connected: bool,
    iteration_size: int | None = None,
    algorithm: Algorithm = Algorithm.DIRECT,
) -> Geometry:
    """Check a request and work out its streams, orders and groups."""
    if len(shape) != 4 or min(shape) <= 0:
        raise ValueError(f"weights must be a non-empty 4-D {layout} tensor, got shape {shape}")
    if min(stride) < 1 or min(padding) < 0:
        raise ValueError("stride must be >= 1 and padding >= 0")
    kh, kw, cin, cout = (int(s) for s in shape)
    sy, sx = stride
    if layout == "HWIO":
        num_ofms, unit = cout, variant.num_ogs
        size = cin * sy * sx if iteration_size is None else int(iteration_size)
        if size < sy * sx:
            raise ValueError("iteration_size must cover at least one IFM channel")
        iters = -(-cin * sy * sx // size)
        per_iter = size // (sy * sx)
        if fully_connected:
            if (kh, kw) != (1, 1) or stride != (1, 1):
                raise ValueError("fully connected weights must be 1x1xIxO with stride 1")
            if cin % FC_BRICK:
                raise ValueError("fully connected input depth must be a multiple of 1024 (pad with the zero point)")
            orders = tuple(fc_raw_order(cin, variant.num_srams, it * per_iter, per_iter) for it in range(iters))
        elif algorithm is Algorithm.WINOGRAD:
            if stride != (1, 1):
                raise ValueError("Winograd needs stride 1")
            orders = (winograd_raw_order(kh, kw, cin),) * iters
        else:
            n = variant.ifm_parallel
            end = -(-cin // n) * n
            orders = tuple(
                hwio_raw_order(kh, kw, cin, n, stride, padding, (it * per_iter, min(it * per_iter + per_iter, end)))
                for it in range(iters)
            )
        channel = np.arange(num_ofms, dtype=np.int32 if num_ofms < 1 << 31 else np.int64)
    elif layout == "HWIM":
        if algorithm is not Algorithm.DIRECT:
            raise ValueError("depthwise weights have no Winograd layout")
        # Driver OFM order is multiplier-major (ofm = m*I + i); TFLite's channel is i*M + m.
        num_ofms, unit, iters = cin * cout, variant.num_srams, 1
        orders = (hwim_raw_order(kh, kw, stride, padding),)
        ofm: np.ndarray = np.arange(num_ofms, dtype=np.int32 if num_ofms < 1 << 31 else np.int64)
        channel = (ofm % cin) * cout + ofm // cin  # int32 when it fits: a depthwise layer has an OFM per 9 weights
    else:
        raise ValueError(f"unknown layout {layout!r}")
    depth = -(-num_ofms // unit) * unit if stripe_depth is None else int(stripe_depth)
    if depth < 1:
        raise ValueError("stripe_depth must be >= 1")
    return Geometry(layout, num_ofms, depth, min(unit, depth), -(-num_ofms // depth), iters, orders, channel)


def sram_layout(num_entries: int, iterations: int, variant: N78Variant) -> list[list[int]]:
    """Groups (stripe-major) per SRAM bank in load order: group k goes to bank (k / iterations) mod banks.

    With two OFMs per bank and several iterations, the two OFMs' streams alternate per iteration.
    """
    banks = variant.num_srams
    groups = [[k for k in range(num_entries) if (k // iterations) % banks == b] for b in range(banks)]
    per_sram = variant.num_ogs // banks
    if per_sram > 1 and iterations > 1:
        block = iterations * per_sram
        for b, group in enumerate(groups):
            if len(group) % block:
                raise ValueError("stripe depth and iterations do not fill the SRAM banks evenly")
            c = np.arange(len(group))
            local = c % block
            src = (c // block) * block + (local % per_sram) * iterations + local // per_sram
            groups[b] = [group[i] for i in src]
    return groups
