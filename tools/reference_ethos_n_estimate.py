"""Ethos-N78 estimator conformance: hwopt's N78 analytic against the support library's estimates.

Per single-layer case and plannable variant, and per reference network, hwopt's MCE cycles, PLE
cycles and DRAM bytes are compared with the library's; weights of the networks come from the
reference's documented generator.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from reference_ethos_n_data import Reference, ReferenceError, _weights, variant_of

from hwopt.targets.ethos_n.network import NetLayer, PleLayer, estimate_network
from hwopt.targets.ethos_n.perf import PleOp
from hwopt.targets.ethos_n.plan import Kind, N78Layer, support
from hwopt.targets.ethos_n.sizing import IDENTITY_WEIGHT, estimate_with_weights
from hwopt.targets.ethos_n.weight_codec import OfmRequant, requant_from_scales

GAMMA = np.uint64(0x9E3779B97F4A7C15)
FIT_GENERATORS = ("gauss", "cluster16")  # cases of these weight kinds fit the plan rules; the rest is held out


def splitmix64(seed: int, count: int) -> np.ndarray:
    """The reference's PRNG stream (vectorised: state k is seed + k*gamma)."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + GAMMA * np.arange(1, count + 1, dtype=np.uint64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def gauss_weights(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """The reference's `gauss` generator: sum of four bytes, centred, quartered, clamped."""
    r = splitmix64(seed, int(np.prod(shape)))
    total = sum(((r >> np.uint64(8 * k)) & np.uint64(255)).astype(np.int64) for k in range(4)) - 510
    return np.clip(total >> 2, -127, 127).astype(np.int8).reshape(shape)


def _params(case: dict[str, Any]) -> dict[str, Any]:
    return {k: (int(v) if str(v).lstrip("-").isdigit() else v) for k, v in case["params"].items()}


def case_layer(case: dict[str, Any]) -> N78Layer:
    """The single layer a reference case describes."""
    p = _params(case)
    kind = {"conv": Kind.CONV, "dw": Kind.DEPTHWISE, "fc": Kind.FULLY_CONNECTED}[p["op"]]
    oh = (p["ih"] + p["pt"] + p["pb"] - p["kh"]) // p["sy"] + 1
    ow = (p["iw"] + p["pl"] + p["pr"] - p["kw"]) // p["sx"] + 1
    oc = p["ic"] if kind is Kind.DEPTHWISE else p["oc"]
    return N78Layer(kind, (p["ih"], p["iw"], p["ic"]), (oh, ow, oc), (p["kh"], p["kw"]), (p["sy"], p["sx"]),
                    (p["pt"], p["pl"]))


@dataclass(frozen=True)
class Measured:
    """hwopt's and the library's totals for one case (or network) on one variant."""

    name: str
    variant: str
    ours: tuple[int, int, int]  # MCE cycles, PLE cycles, DRAM bytes
    theirs: tuple[int, int, int]
    fit: bool


def _library_totals(estimate: dict[str, Any]) -> tuple[int, int, int]:
    passes = estimate["passes"]
    dram = sum(q[k]["memory"]["dram_non_parallel"] + q[k]["memory"]["dram_parallel"]
               for q in passes for k in ("input", "output", "weights"))
    return int(estimate["sum_mce_cycle_count"]), int(estimate["sum_ple_cycle_count"]), int(dram)


def _case_requant(case: dict[str, Any], layer: N78Layer, w: np.ndarray) -> OfmRequant:
    q = case["weights_tensor"]["quant"]
    num = w.shape[3] if layer.kind is not Kind.DEPTHWISE else w.shape[2] * w.shape[3]
    return requant_from_scales(1.0, q["scales"], 1.0, 0, num)


def measure_cases(ref: Reference) -> tuple[list[Measured], list[str]]:
    """Per single-layer case and working variant: hwopt's estimate against the library's."""
    rows, disagreements = [], []
    for name, per_variant in ref.estimates["single_layer"].items():
        if name not in ref.cases:
            raise ReferenceError(f"estimates.json names case {name!r} that cases.json does not hold")
        case = ref.cases[name]
        layer = case_layer(case)
        w, _ = _weights(case, {"weights_tensor": case["weights_tensor"], "weights_source": "case",
                               "bias_source": "case"})
        fit = _params(case)["wgen"] in FIT_GENERATORS
        for variant, entry in per_variant.items():
            if "error" in entry:
                continue
            future = entry["future"]
            v = variant_of(variant)
            reason = support(layer)
            theirs_unsupported = bool(future.get("failure_reasons"))
            if (reason is not None) != theirs_unsupported:
                disagreements.append(f"{name}/{variant}: hwopt {reason!r}, library {future.get('failure_reasons')}")
            if reason is not None:
                continue
            est = estimate_with_weights(layer, v, w, case["weights_tensor"]["quant"]["zero_point"],
                                        requant=_case_requant(case, layer, w))
            rows.append(Measured(name, variant, (est.mce_cycles, est.ple_cycles, est.dram_bytes),
                                 _library_totals(future), fit))
    return rows, disagreements


def _shape(spec: dict[str, Any], key: str) -> tuple[int, int, int]:
    dims = [int(x) for x in spec.get(key) or [1, 1, 1, 1]]
    dims = [1] * (4 - len(dims)) + dims
    return dims[1], dims[2], dims[3]


def _identity(shape: tuple[int, int, int], from_npu: bool, ple: PleOp = PleOp.PASSTHROUGH,
              ple_ofm: tuple[int, int, int] | None = None) -> NetLayer:
    """The identity 1x1 depthwise MCE pass the library runs for a PLE operation of its own."""
    ident_w = np.full((1, 1, shape[2], 1), IDENTITY_WEIGHT, dtype=np.uint8)
    return NetLayer(N78Layer(Kind.DEPTHWISE, shape, shape), ident_w, ple_op=ple, ple_ofm=ple_ofm,
                    input_from_npu=from_npu)


def _pool_op(spec: dict[str, Any], ishape: tuple[int, int, int]) -> PleOp | None:
    size = tuple(spec.get("size") or (1, 1))
    stride = tuple(spec.get("stride") or (1, 1))
    if spec.get("pool") == "MAX" and size == (2, 2) and stride == (2, 2):
        return PleOp.MAXPOOL_2X2
    if spec.get("pool") == "MAX" and size == (3, 3) and stride == (2, 2):
        return PleOp.MAXPOOL_3X3
    if spec.get("pool") == "AVG" and size == (3, 3) and stride == (1, 1):
        return PleOp.AVGPOOL_3X3
    if spec.get("pool") == "AVG" and size == ishape[:2] and size in ((7, 7), (8, 8)):
        return PleOp.MEAN_XY
    return None


#: Pooling kernels the library runs as a fused PLE part: right after an MCE layer they share its pass.
FUSED_POOLS = (PleOp.MAXPOOL_2X2, PleOp.MAXPOOL_3X3, PleOp.MEAN_XY)
MCE_TYPES = {"Convolution": Kind.CONV, "DepthwiseConvolution": Kind.DEPTHWISE, "FullyConnected": Kind.FULLY_CONNECTED}


def network_layers(net: dict[str, Any]) -> tuple[list[NetLayer | PleLayer], dict[int, str]]:
    """The NPU passes of a reference network and hwopt's reasons for the operations it only estimates.

    MCE layers carry their generated weights; a max pool, mean or ReLU right after an MCE layer is
    fused into its PLE; other pooling, means and ReLUs become identity-depthwise passes; additions are
    standalone PLE passes; reshapes, inputs and outputs cost nothing.
    """
    layers: list[NetLayer | PleLayer] = []
    reasons: dict[int, str] = {}
    prev_npu = False  # the previous operation runs on the NPU
    prev_mce = False  # ... and is an MCE layer whose PLE can take a fused operation
    for spec in net.get("layers", []):
        kind = spec.get("type", "")
        op_id = int(spec.get("operation_id", -1))
        ishape, oshape = _shape(spec, "input_shape"), _shape(spec, "output_shape")
        if kind in MCE_TYPES:
            op = MCE_TYPES[kind]
            kh, kw = (int(k) for k in spec.get("kernel", [1, 1]))
            stride = int(spec.get("stride", 1))
            pad = spec.get("padding_tblr", [0, 0, 0, 0])
            if op is Kind.FULLY_CONNECTED:
                ishape = (1, 1, ishape[0] * ishape[1] * ishape[2])
            layer = N78Layer(op, ishape, oshape, (kh, kw), (stride, stride), (int(pad[0]), int(pad[2])))
            wshape = (kh, kw, ishape[2], 1) if op is Kind.DEPTHWISE else (kh, kw, ishape[2], oshape[2])
            reason = support(layer)
            if reason is not None:
                reasons[op_id] = reason
            layers.append(NetLayer(layer, gauss_weights(int(spec.get("weight_seed", 0)), wshape),
                                   input_from_npu=prev_npu))
            prev_npu = prev_mce = reason is None
        elif kind == "Relu":
            if not prev_npu:
                layers.append(_identity(oshape, False))
                prev_npu = prev_mce = True
        elif kind == "Pooling":
            ple = _pool_op(spec, ishape)
            last = layers[-1] if layers else None
            if ple in FUSED_POOLS and prev_mce and isinstance(last, NetLayer):
                layers[-1] = NetLayer(last.layer, last.weights, last.zero_point, last.requant, ple, oshape,
                                      last.input_from_npu, True)
                prev_mce = False
            elif ple is not None:
                layers.append(_identity(ishape, prev_npu, ple, oshape))
                prev_npu, prev_mce = True, False
            else:
                reasons[op_id] = f"{spec.get('pool')} pooling {spec.get('size')} stride {spec.get('stride')}: " \
                                 "not run by the NPU"
                if isinstance(last, (NetLayer, PleLayer)):
                    layers[-1] = replace(last, output_to_npu=False)
                prev_npu = prev_mce = False
        elif kind in ("MeanXy", "Mean"):
            last = layers[-1] if layers else None
            if prev_mce and isinstance(last, NetLayer):
                layers[-1] = NetLayer(last.layer, last.weights, last.zero_point, last.requant, PleOp.MEAN_XY, oshape,
                                      last.input_from_npu, True)
            else:
                layers.append(_identity(ishape, prev_npu, PleOp.MEAN_XY, oshape))
            prev_npu, prev_mce = True, False
        elif kind in ("Addition", "Add"):
            layers.append(PleLayer(PleOp.ADDITION, (ishape, ishape), oshape, input_from_npu=prev_npu))
            prev_npu, prev_mce = True, False
        elif kind in ("EstimateOnly",):
            reasons[op_id] = "estimate only"
            last = layers[-1] if layers else None
            if isinstance(last, (NetLayer, PleLayer)):
                layers[-1] = replace(last, output_to_npu=False)
            prev_npu = prev_mce = False
    return layers, reasons


def measure_networks(ref: Reference) -> tuple[list[Measured], list[str]]:
    """Per network and working variant: summed MCE, PLE and DRAM against the library's."""
    rows, disagreements = [], []
    for name, per_variant in ref.estimates.get("networks", {}).items():
        if name not in ref.networks:
            continue
        layers, reasons = network_layers(ref.networks[name])
        for variant, entry in per_variant.items():
            if "error" in entry:
                continue
            future = entry["future"]
            theirs = {int(k) for k in future.get("failure_reasons", {})}
            ours = set(reasons)
            if not ours <= theirs:
                disagreements.append(f"{name}/{variant}: hwopt estimate-only {sorted(ours)}, library {sorted(theirs)}")
            est = estimate_network(layers, variant_of(variant))
            totals = tuple(sum(getattr(e.estimate, f) for e in est if e.estimate is not None)
                           for f in ("mce_cycles", "ple_cycles", "dram_bytes"))
            rows.append(Measured(name, variant, totals, _library_totals(future), False))  # type: ignore[arg-type]
    return rows, disagreements


def relative_errors(rows: list[Measured], metric: int) -> np.ndarray:
    """|ours - theirs| / theirs per row (0 when both are 0)."""
    out = []
    for r in rows:
        a, b = r.ours[metric], r.theirs[metric]
        out.append(abs(a - b) / b if b else float(a != 0))
    return np.asarray(out, dtype=np.float64)


METRICS = ("mce_cycles", "ple_cycles", "dram_bytes")
BOUNDS = {"mce_cycles": (0.05, 0.15), "ple_cycles": (0.10, None), "dram_bytes": (0.05, None)}
NETWORK_BOUND = 0.10


def _stats(errors: np.ndarray) -> dict[str, float]:
    if errors.size == 0:
        return {"median": 0.0, "p90": 0.0}
    return {"median": round(float(np.median(errors)), 6), "p90": round(float(np.percentile(errors, 90)), 6)}


@dataclass
class EstimatorResult:
    """Per-metric error statistics over cases, fit and held-out parts, and per-network errors."""

    cases: list[Measured]
    networks: list[Measured]
    disagreements: list[str]

    def stats(self, rows: list[Measured] | None = None) -> dict[str, dict[str, float]]:
        rows = self.cases if rows is None else rows
        return {m: _stats(relative_errors(rows, i)) for i, m in enumerate(METRICS)}

    def network_errors(self) -> dict[str, dict[str, float]]:
        """Worst relative error over the working variants, per network and metric."""
        out: dict[str, dict[str, float]] = {}
        for name in dict.fromkeys(r.name for r in self.networks):
            rows = [r for r in self.networks if r.name == name]
            out[name] = {m: round(float(relative_errors(rows, i).max()), 6) for i, m in enumerate(METRICS)}
        return out

    @property
    def conforms(self) -> bool:
        if not self.cases or self.disagreements:
            return False
        stats = self.stats()
        for metric, (median, p90) in BOUNDS.items():
            if stats[metric]["median"] > median or (p90 is not None and stats[metric]["p90"] > p90):
                return False
        return all(e <= NETWORK_BOUND for errs in self.network_errors().values() for e in errs.values())


def check_estimator(ref: Reference) -> EstimatorResult:
    cases, d1 = measure_cases(ref)
    nets, d2 = measure_networks(ref)
    return EstimatorResult(cases, nets, d1 + d2)
