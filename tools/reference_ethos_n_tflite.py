"""Reference networks as int8 TFLite models, run through `hwopt estimate` (the TFLite path).

A network of `cases.json` whose layers TFLite can express (SAME or VALID padding, the
reference's weights from its generator, a ReLU as a RELU6 operator or as the layers' fused
activation) becomes a TFLite model; hwopt's per-pass figures for it must equal the reference
adapter's (one planner front end for both) and, where the adapter is exact, the library's.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from reference_ethos_n_data import Reference, variant_of
from reference_ethos_n_estimate import gauss_weights, network_layers

from hwopt.engines.estimate import estimate
from hwopt.targets import resolve_target
from hwopt.targets.ethos_n.network import estimate_network
from hwopt.testing.builder import Act, GraphBuilder, options

ACT = Act("int8", 0.05, 0)  # the reference's activations: scale 0.05, zero point 0
INPUT = Act("int8", 0.0078125, 0)
W_SCALE = 0.0078125  # the reference's per-tensor weight scale
RELU6 = 3  # TFLite ActivationFunctionType.RELU6: the reference's bounded ReLU [0, 120] at scale 0.05
Pass = tuple[str, int, int, int, int, int]  # PLE kernel, MCE cycles, PLE cycles, DRAM in / out / weights


class NotExpressibleError(ValueError):
    """The reference network has a layer TFLite cannot state the same way."""


def _same(size: int, out: int, k: int, s: int) -> tuple[int, int]:
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def _padding(spec: dict[str, Any]) -> int:
    ish, osh = spec["input_shape"], spec["output_shape"]
    (kh, kw), s = spec["kernel"], int(spec["stride"])
    pads = tuple(int(p) for p in spec["padding_tblr"])
    if pads == (0, 0, 0, 0):
        return 1  # VALID
    if pads == (*_same(ish[1], osh[1], kh, s), *_same(ish[2], osh[2], kw, s)):
        return 0  # SAME
    raise NotExpressibleError(f"padding {list(pads)} is neither SAME nor VALID in TFLite")


def _mce(b: GraphBuilder, spec: dict[str, Any], x: int, fused: bool) -> int:
    ish, osh = tuple(spec["input_shape"]), tuple(spec["output_shape"])
    (kh, kw), s = spec["kernel"], int(spec["stride"])
    bias = b.constant(np.zeros(osh[-1], np.int32), W_SCALE * ACT.scale)
    if spec["type"] == "FullyConnected":  # HWIO [1, 1, I, O] -> TFLite [O, I]
        w = gauss_weights(int(spec["weight_seed"]), (1, 1, int(np.prod(ish[1:])), osh[-1]))
        y = b.activation((1, osh[-1]), ACT)
        b.op("FULLY_CONNECTED", [x, b.constant(np.ascontiguousarray(w[0, 0].T), W_SCALE), bias], [y],
             options("FullyConnectedOptions"))
        return y
    pad, act = _padding(spec), RELU6 if fused else 0
    y = b.activation(osh, ACT)
    if spec["type"] == "Convolution":  # HWIO -> OHWI
        w = gauss_weights(int(spec["weight_seed"]), (kh, kw, ish[3], osh[3]))
        wt = b.constant(np.ascontiguousarray(np.transpose(w, (3, 0, 1, 2))), W_SCALE)
        b.op("CONV_2D", [x, wt, bias], [y], options("Conv2DOptions", padding=pad, strideH=s, strideW=s,
                                                       fusedActivationFunction=act))
    else:  # HWIM [kh, kw, C, 1] -> [1, kh, kw, C]
        w = gauss_weights(int(spec["weight_seed"]), (kh, kw, ish[3], 1))
        wt = b.constant(np.ascontiguousarray(w.reshape(1, kh, kw, ish[3])), W_SCALE)
        b.op("DEPTHWISE_CONV_2D", [x, wt, bias], [y], options(
            "DepthwiseConv2DOptions", padding=pad, strideH=s, strideW=s, depthMultiplier=1, fusedActivationFunction=act))
    return y


def reference_tflite(net: dict[str, Any], fused: bool = False) -> bytes:
    """A reference network as an int8 TFLite model; `fused` puts each ReLU into its layer's options
    (NotExpressibleError if a layer has no TFLite equivalent)."""
    b = GraphBuilder(np.random.default_rng(0), str(net.get("name", "reference network")))
    x = t = -1
    for spec in net.get("layers", []):
        kind, osh = spec.get("type"), tuple(spec.get("output_shape", ()))
        if kind == "Input":
            x = t = b.activation(osh, INPUT)
        elif kind in ("Convolution", "DepthwiseConvolution", "FullyConnected"):
            t = _mce(b, spec, t, fused)
        elif kind == "Relu":
            if not fused:
                y = b.activation(osh, ACT)
                b.op("RELU6", [t], [y])
                t = y
        elif kind == "Pooling":
            (kh, kw), (sh, sw) = spec["size"], spec["stride"]
            y = b.activation(osh, ACT)
            b.op("MAX_POOL_2D" if spec["pool"] == "MAX" else "AVERAGE_POOL_2D", [t], [y],
                 options("Pool2DOptions", padding=1, strideH=sh, strideW=sw, filterHeight=kh, filterWidth=kw))
            t = y
        elif kind in ("MeanXy", "Mean"):
            y = b.activation(osh, ACT)
            axes = b.const_int32([1, 2])
            b.op("MEAN", [t, axes], [y], options("ReducerOptions", keepDims=len(osh) == 4))
            t = y
        elif kind == "Reshape":
            y = b.activation(osh, ACT)
            b.op("RESHAPE", [t, b.const_int32(list(osh))], [y], options("ReshapeOptions", newShape=list(osh)))
            t = y
        elif kind != "Output":
            raise NotExpressibleError(f"layer type {kind} is not written as TFLite here")
    if x < 0:
        raise NotExpressibleError("no input layer")
    b.io([x], [t])
    return b.build()


def target_name(variant: str) -> str:
    """hwopt's target name for a library variant such as `4TOPS_4PLE_RATIO`."""
    return "ethos-n78-" + variant.removesuffix("_RATIO").lower().replace("_", "-")


def hwopt_passes(model: bytes, variant: str) -> list[Pass]:
    """`hwopt estimate` (analytic) on a TFLite model: every pass of every operator, in order."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.tflite"
        path.write_bytes(model)
        report = estimate(path, resolve_target(target_name(variant)), engine="analytic")
    return [(p.ple_operation, p.mce_cycles, p.ple_cycles, p.input_dram_bytes, p.output_dram_bytes,
             p.weight_dram_bytes) for la in report.layers for p in la.passes]


def adapter_passes(net: dict[str, Any], variant: str) -> list[Pass]:
    """The reference adapter's passes for the same network (what the conformance figures use)."""
    layers, _ = network_layers(net)
    return [(p.ple_op.name if p.ple_op is not None else "CONVERSION", p.mce_cycles, p.ple_cycles, p.input_dram,
             p.output_dram, p.weight_dram)
            for e in estimate_network(layers, variant_of(variant)) if e.estimate is not None
            for p in e.estimate.passes]


def library_passes(entry: dict[str, Any]) -> list[tuple[int, ...]]:
    """The library's passes: MCE cycles, PLE cycles, DRAM in / out / weights."""
    def dram(q: dict[str, Any], k: str) -> int:
        return int(q[k]["memory"]["dram_parallel"] + q[k]["memory"]["dram_non_parallel"])

    return [(q["mce"]["cycle_count"], q["ple"]["cycle_count"], dram(q, "input"), dram(q, "output"),
             dram(q, "weights")) for q in entry["future"]["passes"]]


@dataclass
class TfliteResult:
    """Reference networks through `hwopt estimate` on their TFLite form."""

    pairs: int = 0  # network x variant pairs checked
    equal_to_adapter: int = 0
    equal_to_library: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # network -> why it has no TFLite form here
    differ: list[str] = field(default_factory=list)


def check_tflite(ref: Reference) -> TfliteResult:
    """Per reference network with a TFLite form and per working variant: hwopt's passes on the
    TFLite model against the adapter's and the library's."""
    result = TfliteResult()
    for name, per_variant in ref.estimates.get("networks", {}).items():
        net = ref.networks.get(name)
        if net is None:
            continue
        try:
            model = reference_tflite(net)
        except (NotExpressibleError, KeyError, TypeError, ValueError) as exc:
            result.skipped[name] = str(exc)
            continue
        for variant, entry in per_variant.items():
            if "error" in entry:
                continue
            result.pairs += 1
            ours = hwopt_passes(model, variant)
            if ours == adapter_passes(net, variant):
                result.equal_to_adapter += 1
            else:
                result.differ.append(f"{name}/{variant}")
            result.equal_to_library += [p[1:] for p in ours] == library_passes(entry)
    return result
