"""Cost terms every Ethos-U generation shares: encoded weight-stream size, output-stage cycles and
where feature maps live."""

from __future__ import annotations

import math

from hwopt.targets.descriptor import Target
from hwopt.targets.geometry import LayerGeometry, OpKind, cdiv, round_up

# Passes Vela lowers SOFTMAX into (max, exp LUT, sums, Newton-Raphson reciprocal): ~25 elementwise passes.
SOFTMAX_PASSES = 25
BRICK = 16  # NHCWB16 feature maps are stored in 16-channel bricks
SCALE_BYTES_PER_CHANNEL = 10  # bias + scale + shift record per OFM channel


def padded_weights(g: LayerGeometry, target: Target) -> int:
    """Weights the encoder emits after padding IFM/OFM depth and kernel to the brick granules."""
    if g.weights is None:
        return 0
    kh, kw = g.kernel
    uc = target.npu.ofm_ublock[2]
    if g.kind is OpKind.DEPTHWISE:
        return round_up(g.ofm[2], uc) * round_up(kh * kw, 4)
    if g.kind is OpKind.FULLY_CONNECTED:  # the whole input, flattened, per output channel
        return round_up(g.ofm[2], uc) * round_up(max(g.weights.count // max(g.ofm[2], 1), 1), 8)
    return round_up(g.ofm[2], uc) * round_up(g.ifm[2], 8) * kh * kw


def encoded_weight_bytes(g: LayerGeometry, target: Target) -> int:
    """Encoded stream size: entropy-coded symbols (zeros run-length coded when they dominate) + headers."""
    if g.weights is None:
        return 0
    w = g.weights
    n = padded_weights(g, target)
    pad_zeros = n - w.count
    z = (w.zero_fraction * w.count + pad_zeros) / max(n, 1)
    bits = w.entropy_bits
    if z > 0.5:  # zero-run mode: zeros leave the symbol stream, only run lengths are coded
        bits = (1 - z) * (w.entropy_bits + 1.0) + 0.3 * z
    bits = min(max(bits, 0.15), 9.0) + 0.2  # GRC parameter/palette overhead
    streams = max(1, cdiv(g.ofm[2], 64)) * target.npu.cores * target.npu.weight_streams
    return round_up(math.ceil(n * bits / 8), 16) + 16 * streams


def ao_cycles(g: LayerGeometry, target: Target) -> int:
    """Output-stage cycles: per OFM element at the descriptor's rate for the op kind."""
    os_ = target.npu.output_stage
    # a graph output is written NHWC (no 16-channel bricks), so only its real channels pass the stage
    elements = g.ofm[0] * g.ofm[1] * (g.ofm[2] if g.ofm_in_arena else round_up(g.ofm[2], BRICK))
    rate = {OpKind.CONV: os_.conv, OpKind.DEPTHWISE: os_.conv, OpKind.FULLY_CONNECTED: os_.conv,
            OpKind.POOL: os_.maxpool if g.op == "MAX_POOL_2D" else os_.conv, OpKind.LUT: max(os_.lut, os_.conv),
            OpKind.SOFTMAX: os_.add * SOFTMAX_PASSES}.get(g.kind)
    if rate is None:
        rate = os_.mul if g.op in ("MUL", "SQUARED_DIFFERENCE", "PRELU") else os_.add
    return math.ceil(rate * elements / target.npu.cores)


def fm_memories(g: LayerGeometry, target: Target) -> tuple[str, str]:
    """Where IFM and OFM live: the arena, or SRAM when the arena is off-chip and both fit the cache."""
    arena = target.arena_memory
    if arena == "Sram":
        return "Sram", "Sram"
    fits = (g.ifm_elements + g.ofm_elements) * g.itemsize <= target.arena_limit // 2
    return ("Sram", "Sram") if fits else (arena, arena)




def constant_read_bytes(g: LayerGeometry, target: Target) -> float:
    """Bus bytes of constant feature-map data an op reads from the constant memory: an elementwise op's
    constant operand (re-read for every OFM element it broadcasts to; a single scalar is a register),
    or the fill a PAD writes around its input. Constants are stored NHWC, so a burst covers only one
    pixel's channels (at most a 16-channel block) and the rest of the burst is wasted."""
    burst = target.memory_config(target.const_memory).burst_length
    if g.const_ifm is not None:
        h, w, c = g.const_ifm
        if h * w * c <= 1:
            return 0.0
        n = g.ofm_elements
    elif g.op in ("PAD", "PADV2", "MIRROR_PAD"):
        c = g.ofm[2]
        n = max(g.ofm_elements - g.ifm_elements, 0)
    else:
        return 0.0
    return n * g.itemsize * burst / max(min(burst, min(c, BRICK) * g.itemsize), 1)


def burst_factor(target: Target, memory: str, nhwc: bool, channels: int, block_w: int, block_c: int,
                  write: bool) -> float:
    """Bus bytes per payload byte: short bursts (NHWC rows narrower than a burst) waste the rest of it."""
    burst_max = target.memory_config(memory).burst_length
    if nhwc:
        if channels == block_c and (not write or block_c <= 16):
            burst = block_w * channels
        elif write:
            burst = min(64, 16 * target.npu.cores, block_c)
        else:
            burst = block_c
    else:
        burst = 16 * block_w * (target.npu.cores if write else 1)
    return burst_max / max(min(burst_max, burst), 1)


def io_memories(g: LayerGeometry, target: Target) -> tuple[str, str]:
    """Graph inputs/outputs stay in the arena; intermediates are staged in SRAM when they fit."""
    if g.ifm_memory and g.ofm_memory:  # placed with the whole model's feature maps (`fm_placement`)
        return g.ifm_memory, g.ofm_memory
    ifm_mem, ofm_mem = fm_memories(g, target)
    arena = target.arena_memory
    return (arena if g.ifm_in_arena else ifm_mem, arena if g.ofm_in_arena else ofm_mem)
