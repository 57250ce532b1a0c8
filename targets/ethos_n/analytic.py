"""hwopt's Ethos-N78 cost model, following the driver stack's estimator formulas (ethos-n-facts §3).

- MCE (convolution engine), direct: kh·kw·roundup(OH,4)·roundup(OW,2)·roundup(IFM, IG·engines)·
  roundup(OFM, OG·engines) / MACs-per-cycle; depthwise runs on the IG lanes only (IG·engines·8 MACs).
- PLE (programmable layer engine): patches·cycles-per-patch, patches = ceil(H/4)·ceil(W/4)·
  ceil(C/(engines·lanes)), per-operation patch costs from the estimator table.
- DMA: bytes / 16 per cycle + 100 cycles per stripe; feature maps stay in SRAM when a layer's
  input, output and weights fit, otherwise they stream from DRAM.
- Pass = max(DMA, MCE + 100·stripes, PLE), each at least 2500 cycles per stripe, as in the combiner.
"""

from __future__ import annotations

import math

from hwopt.ir import Model
from hwopt.targets.descriptor import Target
from hwopt.targets.ethos_u.cost_common import SCALE_BYTES_PER_CHANNEL, encoded_weight_bytes
from hwopt.targets.ethos_u.placement import ethos_u_geometry
from hwopt.targets.geometry import LayerCost, LayerGeometry, OpKind

# PLE cycles per 4x4 patch per lane, by operation (estimator table).
PLE_PATCH_CYCLES = {
    "ADD": 35,
    "SUB": 35,
    "MUL": 35,
    "AVERAGE_POOL_2D": 97,
    "MEAN": 37,
    "MAX_POOL_2D": 37,
    "LEAKY_RELU": 37,
    "LOGISTIC": 41,
    "TANH": 41,
    "HARD_SWISH": 41,
    "TRANSPOSE": 14,
    "RESIZE_NEAREST_NEIGHBOR": 13,
}
PASSTHROUGH_PATCH = 6
MIN_CYCLES_PER_STRIPE = 2500
OVERHEAD_PER_STRIPE = 100
# N78 operator support (Arm NN Ethos-N backend); anything else falls back to the CPU.
N78_OPS = frozenset(
    ["ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "HARD_SWISH", "LEAKY_RELU", "LOGISTIC", "MAX_POOL_2D", "MEAN", "MUL", "PAD", "QUANTIZE", "RELU", "RELU6", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "SPLIT", "SQUEEZE", "EXPAND_DIMS", "TANH", "TRANSPOSE", "TRANSPOSE_CONV", "DEPTH_TO_SPACE", "SPACE_TO_DEPTH", "SUB", "STRIDED_SLICE"]
)


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _round(a: int, b: int) -> int:
    return _cdiv(a, b) * b


def mce_cycles(g: LayerGeometry, target: Target) -> int:
    """Convolution-engine cycles with the estimator's rounding."""
    v = target.n78
    assert v is not None
    kh, kw = g.kernel
    oh, ow, oc = g.ofm
    if g.kind is OpKind.DEPTHWISE:
        return _cdiv(kh * kw * _round(oh, 4) * _round(ow, 2) * _round(oc, v.ifm_parallel), v.ifm_parallel * 8)
    if g.kind in (OpKind.CONV, OpKind.FULLY_CONNECTED):
        if g.kind is OpKind.FULLY_CONNECTED:
            kh = kw = 1
        return _cdiv(
            kh * kw * _round(oh, 4) * _round(ow, 2) * _round(g.ifm[2], v.ifm_parallel) * _round(oc, v.num_ogs),
            v.macs_per_cycle,
        )
    return 0


def ple_cycles(g: LayerGeometry, target: Target) -> int:
    """PLE cycles: every op's output passes the PLE (a plain passthrough after MCE ops)."""
    v = target.n78
    assert v is not None
    oh, ow, oc = g.ofm
    patches = _cdiv(oh, 4) * _cdiv(ow, 4) * _cdiv(oc, v.engines * v.ple_lanes)
    per_patch = PLE_PATCH_CYCLES.get(g.op, PASSTHROUGH_PATCH)
    if g.kind in (OpKind.CONV, OpKind.DEPTHWISE, OpKind.FULLY_CONNECTED):
        per_patch = PASSTHROUGH_PATCH
    if g.kind is OpKind.POOL and g.op not in PLE_PATCH_CYCLES:
        per_patch = PLE_PATCH_CYCLES["MEAN"]
    return patches * per_patch


def layer_cost(g: LayerGeometry, target: Target) -> LayerCost:
    """Pass cycles of one operator on an Ethos-N78 variant."""
    v = target.n78
    assert v is not None
    if g.kind is OpKind.CPU or g.op not in N78_OPS:
        return LayerCost(g.subgraph, g.op_index, g.op, "cpu", 0, 0, {}, 0, 0, None, 0, "cpu")
    if g.kind is OpKind.NOP:
        return LayerCost(g.subgraph, g.op_index, g.op, "npu", 0, 0, {}, 0, 0, None, 0, "none")
    encoded = encoded_weight_bytes(g, target)
    weight_bytes = encoded + SCALE_BYTES_PER_CHANNEL * g.ofm[2] if encoded else 0
    fm_bytes = (g.ifm_elements + g.ifm2_elements + g.ofm_elements) * g.itemsize
    # feature maps stay on-chip when the layer's working set fits (the combiner cascades such passes)
    on_chip = fm_bytes + encoded <= v.sram_bytes
    dram_bytes = weight_bytes + (0 if on_chip else fm_bytes)
    stripes = max(1, _cdiv(fm_bytes + encoded, max(v.sram_bytes // 2, 1)))
    dma = math.ceil(dram_bytes / target.bandwidth("Dram")) + OVERHEAD_PER_STRIPE * stripes if dram_bytes else 0
    mce = mce_cycles(g, target)
    mce_total = mce + OVERHEAD_PER_STRIPE * stripes if mce else 0
    ple = ple_cycles(g, target)
    floor = MIN_CYCLES_PER_STRIPE * stripes if g.kind is not OpKind.MEMORY else 0
    compute = max(mce_total, ple)
    cycles = max(compute, dma, floor if (mce or ple) else 0)
    weight_dma = math.ceil(weight_bytes / target.bandwidth("Dram")) if weight_bytes else 0
    if cycles in (compute, floor):
        bound = "compute"
    elif weight_dma * 2 >= dma:
        bound = "weights"
    else:
        bound = "memory"
    mem = {"Dram": dma} if dram_bytes else {}
    return LayerCost(
        g.subgraph,
        g.op_index,
        g.op,
        "npu",
        int(cycles),
        int(compute),
        mem,
        weight_dma,
        g.macs,
        encoded or None,
        min(fm_bytes + encoded, v.sram_bytes),
        bound,
    )


def estimate_layers(model: Model, target: Target) -> list[LayerCost]:
    """Analytic per-operator costs of a whole model on an Ethos-N78 variant."""
    return [layer_cost(g, target) for g in ethos_u_geometry(model, target.family)]
