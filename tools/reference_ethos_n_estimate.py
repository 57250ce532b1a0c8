"""Ethos-N78 estimator conformance: hwopt's N78 analytic against the support library's estimates.

Per single-layer case and plannable variant, and per reference network, hwopt's MCE cycles, PLE
cycles and DRAM bytes are compared with the library's; weights of the networks come from the
reference's documented generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from reference_ethos_n_data import Reference, ReferenceError, _weights, variant_of

from hwopt.targets.ethos_n.graph import NetOp, OpClass, pool_kernel
from hwopt.targets.ethos_n.graph import network_layers as plan_network
from hwopt.targets.ethos_n.network import NetLayer, PleLayer, estimate_network
from hwopt.targets.ethos_n.perf import PleOp
from hwopt.targets.ethos_n.plan import Kind, N78Layer, support
from hwopt.targets.ethos_n.sizing import estimate_with_weights
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


MCE_TYPES = {"Convolution": Kind.CONV, "DepthwiseConvolution": Kind.DEPTHWISE, "FullyConnected": Kind.FULLY_CONNECTED}


def _op(spec: dict[str, Any], source: tuple[int, ...]) -> NetOp | None:
    """One reference operation as the planner's front end takes it (None for input and output)."""
    kind = spec.get("type", "")
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
        weights = gauss_weights(int(spec.get("weight_seed", 0)), wshape)
        return NetOp(OpClass.MCE, ishape, oshape, source, layer=NetLayer(layer, weights))
    if kind == "Relu":
        return NetOp(OpClass.RELU, ishape, oshape, source)
    if kind == "Pooling":
        size = tuple(int(x) for x in spec.get("size") or (1, 1))
        stride = tuple(int(x) for x in spec.get("stride") or (1, 1))
        ple = pool_kernel(str(spec.get("pool")), size, stride, ishape)  # type: ignore[arg-type]
        if ple is None:
            reason = f"{spec.get('pool')} pooling {spec.get('size')} stride {spec.get('stride')}: not run by the NPU"
            return NetOp(OpClass.CPU, ishape, oshape, source, reason=reason)
        return NetOp(OpClass.PLE, ishape, oshape, source, ple=ple)
    if kind in ("MeanXy", "Mean"):
        return NetOp(OpClass.PLE, ishape, oshape, source, ple=PleOp.MEAN_XY)
    if kind in ("Addition", "Add"):
        return NetOp(OpClass.PLE, ishape, oshape, source, ple=PleOp.ADDITION, ifms=(ishape, ishape))
    if kind == "EstimateOnly":
        return NetOp(OpClass.CPU, ishape, oshape, source, reason="estimate only")
    if kind in ("Input", "Output"):
        return None
    return NetOp(OpClass.RESHAPE, ishape, oshape, source)


def network_layers(net: dict[str, Any]) -> tuple[list[NetLayer | PleLayer], dict[int, str]]:
    """The NPU passes of a reference network (a chain of operations) through hwopt's planner front
    end (`hwopt.targets.ethos_n.graph`, the one `hwopt estimate` uses on TFLite models), and hwopt's
    reasons, per operation id, for the operations it only estimates."""
    ops: list[NetOp] = []
    ids: list[int] = []
    for spec in net.get("layers", []):
        op = _op(spec, (len(ops) - 1,) if ops else ())
        if op is not None:
            ops.append(op)
            ids.append(int(spec.get("operation_id", -1)))
    planned = plan_network(ops)
    return planned.layers, {ids[i]: r for i, r in planned.reasons.items()}


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
