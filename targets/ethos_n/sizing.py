"""Ethos-N78 weight DRAM sizes from hwopt's own encoder under the library's plan for a layer."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import replace

import numpy as np

from .layout import Algorithm
from .passes import LayerEstimate, estimate_layer
from .perf import Block, PleOp
from .plan import Kind, LayerPlan, N78Layer, plan_layer
from .variants import N78Variant
from .weight_codec import EncodedLayer, EncodedSize, OfmRequant, encode_layer, encoded_size

IDENTITY_WEIGHT = 2  # the interleave pass's identity depthwise: uint8 2 at scale 0.5


def plan_kwargs(layer: N78Layer, plan: LayerPlan, v: N78Variant) -> dict[str, object]:
    return {
        "variant": v,
        "layout": "HWIM" if layer.kind is Kind.DEPTHWISE else "HWIO",
        "stride": layer.stride,
        "padding": layer.padding,
        "stripe_depth": plan.stripe_depth,
        "fully_connected": layer.kind is Kind.FULLY_CONNECTED,
        "iteration_size": plan.iteration_size,
        "algorithm": plan.algorithm,
    }


def encode_planned(
    weights: np.ndarray,
    zero_point: int,
    layer: N78Layer,
    plan: LayerPlan,
    v: N78Variant,
    *,
    bias: np.ndarray | None = None,
    requant: OfmRequant | None = None,
) -> EncodedLayer:
    """Encode HWIO (conv, fully connected) or HWIM (depthwise) weights the way the plan asks."""
    return encode_layer(weights, zero_point=zero_point, bias=bias, requant=requant, **plan_kwargs(layer, plan, v))


def identity_weight_bytes(channels: int, plan: LayerPlan, v: N78Variant) -> int:
    """Size of the interleave pass's identity depthwise weights (one weight per channel)."""
    w = np.full((1, 1, channels, 1), IDENTITY_WEIGHT, dtype=np.uint8)
    size = encoded_size(w, zero_point=0, variant=v, layout="HWIM", stripe_depth=plan.identity_stripe_depth,
                        iteration_size=plan.identity_stripe_depth)
    return size.total_bytes


_SIZES: OrderedDict[tuple[object, ...], EncodedSize] = OrderedDict()
_SIZES_MAX = 4096


def _cached_size(
    weights: np.ndarray, zero_point: int, requant: OfmRequant | None, layer: N78Layer, plan: LayerPlan, v: N78Variant
) -> EncodedSize:
    """`encoded_size`, remembered per weights and weight geometry: variants that differ only in PLE
    lanes or SRAM size encode identically, and an estimate sweep asks for the same layers again."""
    per_channel = bool(requant is not None and requant.per_channel)
    key = (hashlib.blake2b(np.ascontiguousarray(weights).tobytes(), digest_size=16).digest(), weights.shape,
           weights.dtype.str, zero_point, per_channel, layer.kind, layer.stride, layer.padding, plan.stripe_depth,
           plan.iteration_size, plan.algorithm, v.ifm_parallel, v.num_ogs, v.num_srams)
    hit = _SIZES.get(key)
    if hit is not None:
        _SIZES.move_to_end(key)
        return hit
    size = encoded_size(weights, zero_point=zero_point, requant=requant, **plan_kwargs(layer, plan, v))
    _SIZES[key] = size
    if len(_SIZES) > _SIZES_MAX:
        _SIZES.popitem(last=False)
    return size


def estimate_with_weights(
    layer: N78Layer,
    v: N78Variant,
    weights: np.ndarray,
    zero_point: int,
    *,
    input_in_dram: bool = True,
    output_in_dram: bool = True,
    ple_op: PleOp = PleOp.PASSTHROUGH,
    ple_ofm: tuple[int, int, int] | None = None,
    requant: OfmRequant | None = None,
    block: Block | None = None,
    interleave_in_dram: bool = False,
) -> LayerEstimate:
    """Plan the layer, encode its weights with hwopt's encoder and estimate its passes.

    `requant` matters for the size only through `per_channel` (headers reloaded on every OFM).
    """
    plan = plan_layer(layer, v, ple_op, ple_ofm)
    if block is not None and plan.algorithm is Algorithm.DIRECT:
        plan = replace(plan, block=block)
    size = _cached_size(weights, zero_point, requant, layer, plan, v)
    identity = identity_weight_bytes(layer.ifm[2], plan, v) if plan.interleave else 0
    return estimate_layer(layer, v, plan, weight_bytes=size.total_bytes, weight_stripes=size.num_stripes,
                          identity_bytes=identity, input_in_dram=input_in_dram, output_in_dram=output_in_dram,
                          ple_op=ple_op, ple_ofm=ple_ofm, interleave_in_dram=interleave_in_dram)
