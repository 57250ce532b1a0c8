"""Ethos-N78 per-layer weight encoding: the driver stack's weight blob (targets/ethos_n/weight_codec.py),
with the codec loaded only when an N78 target asks for it."""

from __future__ import annotations

import logging
from types import ModuleType

import numpy as np

from hwopt.analysis.layers import WeightLayer, weight_layers
from hwopt.analysis.validate import Engine, operator_problem
from hwopt.engines.encode_layer import LayerEncoding, StreamInfo, finish, not_encodable, weight_problem
from hwopt.ir import Model
from hwopt.targets.ethos_n.variants import N78Variant

log = logging.getLogger(__name__)


def _n78_codec() -> tuple[ModuleType, ModuleType, ModuleType, ModuleType]:
    """The N78 codec's modules (plan, sizing, tflite, weight_decode), loaded on first use."""
    from hwopt.targets.ethos_n import plan, sizing, tflite, weight_decode  # lazy: ~0.06 s, only for N78 targets

    return plan, sizing, tflite, weight_decode


def n78_problem(layer: WeightLayer, model: Model) -> str | None:
    """Why the N78 weight format cannot hold a layer, known without encoding it (the estimate uses it too)."""
    reason = weight_problem(layer, model) or operator_problem(model, layer.subgraph, layer.op_index, Engine.ANALYTIC)
    if reason is not None:
        return reason
    plan, _, tflite, _ = _n78_codec()
    try:
        why = plan.support(tflite.n78_weights(model, layer).layer)
    except ValueError as exc:  # a geometry the N78 weight format has no layout for
        return f"ethos-n78: {exc}"
    return None if why is None else f"ethos-n78: the support library only estimates this layer: {why}"


def encode_n78(layer: WeightLayer, model: Model, variant: N78Variant) -> LayerEncoding:
    """Encode as the Ethos-N support library would: its plan (stripe depth, IFM iteration size,
    Winograd or direct, fully connected padding) and the layer's requantisation in the headers."""
    plan, sizing, tflite, weight_decode = _n78_codec()
    nw = tflite.n78_weights(model, layer)
    reason = plan.support(nw.layer)
    if reason is not None:
        raise ValueError(f"the support library only estimates this layer: {reason}")
    layer_plan = plan.plan_layer(nw.layer, variant)
    enc = sizing.encode_planned(nw.weights, nw.zero_point, nw.layer, layer_plan, variant, bias=nw.bias,
                                requant=nw.requant)
    back = weight_decode.decode_weights(
        enc, shape=nw.weights.shape, variant=variant, layout=nw.layout,  # type: ignore[arg-type]
        zero_point=nw.zero_point, dtype=nw.weights.dtype, stride=nw.layer.stride, padding=nw.layer.padding,
        stripe_depth=layer_plan.stripe_depth, fully_connected=nw.layer.kind is plan.Kind.FULLY_CONNECTED,
        iteration_size=layer_plan.iteration_size, algorithm=layer_plan.algorithm)
    ok = bool(np.array_equal(np.asarray(back), nw.weights))
    del back
    data = bytes(enc.data)
    coded = int(enc.stream_bits.sum(dtype=np.int64))
    info = [StreamInfo(0, len(data), int(nw.weights.size), 0, 0)]
    # No int32 copy of the weights: the N78 takes one zero point per tensor, so the statistics come
    # from a histogram of the raw bytes.
    return finish(layer, model, None, data, info, fmt="N78", traversal=layer_plan.algorithm.value, source=None,
                  coded=coded, ok=ok)


def encode_or_report_n78(layer: WeightLayer, model: Model, variant: N78Variant, reason: str | None) -> LayerEncoding:
    """One layer encoded for an N78 variant, or reported not encodable: for `reason` (`n78_problem`), or for a
    geometry the weight format turns out to have no layout for."""
    if reason is None:
        try:
            return encode_n78(layer, model, variant)
        except ValueError as exc:  # a geometry the N78 weight format has no layout for
            reason = f"ethos-n78: {exc}"
    return not_encodable(layer, model, reason)


def encode_layers_n78(model: Model, variant: N78Variant) -> list[LayerEncoding]:
    """Every weight layer of `model` encoded for an N78 variant, in order, a layer the format cannot
    hold reported not encodable: `encode_model`'s N78 layers, without the Ethos-U machinery it loads."""
    out = [encode_or_report_n78(layer, model, variant, n78_problem(layer, model)) for layer in weight_layers(model)]
    for enc in out:
        if enc.encodable and not enc.roundtrip_ok:
            log.error("round trip failed for subgraph %d op %d (%s)", enc.subgraph, enc.op_index, enc.op)
    return out
