"""Ethos-U85 configurations as the block search sees them: RAM and buffer sizes, micro-blocks, the
operations each micro-block serves and the IFM allocation units (Arm Ethos-U85 TRM; sizes as Vela 5.2
uses them)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

Shape3 = tuple[int, int, int]


class U85Op(Enum):
    """The U85 hardware operation a (lowered) operator runs as; it selects the search."""

    CONV = "conv"
    DEPTHWISE = "depthwise"
    VECTOR_PRODUCT = "vector_product"  # fully connected
    POOL = "pool"  # pooling, standalone activations, LUTs, rescales
    REDUCE_SUM = "reduce_sum"
    REDUCE_MINMAX = "reduce_minmax"
    ARGMAX = "argmax"
    ELEMENTWISE = "elementwise"
    RESIZE = "resize"
    MEMORY_COPY = "memory_copy"


@dataclass(frozen=True)
class U85Arch:
    """The fixed buffers and micro-blocks of one U85 size (Arm Ethos-U85 TRM / Vela's configuration table)."""

    macs: int
    ublocks: tuple[Shape3, ...]  # in the order the search tries them (ties keep the first)
    ifm_ram: int
    acc_ram: int
    cb_ram: int  # chaining buffer (Vela 5.2 sizes: 768 B on U85-128 up to 12 KiB on U85-2048)
    ob_ram: int  # output buffer
    # IFM allocation unit per micro-block, for IFM block depths of <= 128, <= 256 and > 256 bits
    alloc_units: dict[Shape3, tuple[Shape3, Shape3, Shape3]]
    # the operations each micro-block serves, per IFM precision (8, 16, 32 bits)
    ops: dict[Shape3, tuple[frozenset[U85Op], frozenset[U85Op], frozenset[U85Op]]]


def _ops(*names: str) -> frozenset[U85Op]:
    return frozenset(U85Op(n) for n in names)


_CONV = ("conv", "vector_product")
_ALL = (*_CONV, "depthwise", "pool", "reduce_sum", "elementwise", "reduce_minmax", "argmax", "resize")
_NARROW = _ops(*_CONV, "reduce_sum", "elementwise", "resize")  # 8-bit IFM, 8-deep micro-blocks
_WIDE16 = _ops(*_ALL)
_WIDE32 = _ops("reduce_sum", "elementwise", "reduce_minmax", "resize")
_DEEP8 = _ops("depthwise", "pool", "elementwise", "reduce_minmax", "argmax", "resize")
_DEEP16 = _ops(*_CONV, "elementwise", "resize")  # 16-bit IFM: 1x1 depth-first convolutions only
_DEEP32 = _ops("elementwise", "resize")
_MC = _ops(*_CONV, "elementwise")  # multi-core, 32/64-deep micro-blocks


def _arch_table() -> dict[int, U85Arch]:
    small = ((1, 2, 1), (1, 1, 2), (1, 1, 2))
    au256 = ((2, 2, 1), (1, 2, 2), (1, 1, 4))
    au_w4 = ((1, 4, 1), (1, 2, 2), (1, 1, 4))
    au1k, au1k_w = ((2, 4, 1), (2, 2, 2), (1, 2, 4)), ((2, 4, 1), (1, 4, 2), (1, 2, 4))
    au2k, au2k_w = ((4, 4, 1), (2, 4, 2), (2, 2, 4)), ((4, 4, 1), (2, 4, 2), (1, 4, 4))
    narrow, deep, full = (_NARROW, _WIDE16, _WIDE32), (_DEEP8, _DEEP16, _DEEP32), (_WIDE16, _WIDE16, _WIDE32)
    mc, mc16 = (_MC, _MC, _ops("elementwise")), full
    return {
        128: U85Arch(128, ((1, 2, 8), (1, 1, 16)), 8192, 8192, 768, 2048,
                     {(1, 2, 8): small, (1, 1, 16): small}, {(1, 2, 8): narrow, (1, 1, 16): deep}),
        256: U85Arch(256, ((1, 2, 16), (1, 4, 8), (2, 2, 8)), 16384, 16384, 1536, 2048,
                     {(2, 2, 8): au256, (1, 2, 16): au256, (1, 4, 8): au_w4},
                     {(2, 2, 8): narrow, (1, 4, 8): narrow, (1, 2, 16): deep}),
        512: U85Arch(512, ((2, 2, 16), (1, 4, 16)), 16384, 32768, 3072, 4096,
                     {(2, 2, 16): au256, (1, 4, 16): au_w4}, {(2, 2, 16): full, (1, 4, 16): full}),
        1024: U85Arch(1024, ((2, 2, 32), (1, 4, 32), (2, 4, 16)), 16384, 65536, 6144, 4096,
                      {(2, 2, 32): au1k, (2, 4, 16): au1k, (1, 4, 32): au1k_w},
                      {(2, 2, 32): mc, (1, 4, 32): mc, (2, 4, 16): mc16}),
        2048: U85Arch(2048, ((2, 2, 64), (1, 4, 64), (4, 4, 16)), 32768, 131072, 12288, 8192,
                      {(2, 2, 64): au2k, (4, 4, 16): au2k, (1, 4, 64): au2k_w},
                      {(2, 2, 64): mc, (1, 4, 64): mc, (4, 4, 16): mc16}),
    }


U85_ARCH = _arch_table()
