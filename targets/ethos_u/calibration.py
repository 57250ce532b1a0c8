"""Per-configuration calibration of the Ethos-U cost terms, fitted on generated models only.

The structural model (`u55`, `u85`) gives per layer its compute, feature-map, weight-transfer and
decode terms. Vela combines terms the structural model only approximates (block choice, command
issue, burst waste, weight buffering), so the final cycles are a log-linear function of those terms
and of the layer's size: log(cycles) = w . features, with one weight vector per configuration and
operator group. The weights are fitted by `tools/fit_analytic.py` on the fitting side of the
generated corpus (never on the validation side or on real models) and stored in
`calibration.json`; a configuration without its own weights uses the nearest fitted one of its
family by MAC count.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from hwopt.targets.descriptor import Family, Target
from hwopt.targets.ethos_u.u55 import follows_vela
from hwopt.targets.ethos_u.u85_ops import follows_vela as u85_follows_vela
from hwopt.targets.geometry import LayerCost, LayerGeometry

CALIBRATION_FILE = Path(__file__).with_name("calibration.json")
FEATURES = ("bias", "cycles", "compute", "memory_max", "memory_sum", "decode", "ofm", "ifm", "macs", "weights", "itemsize",
            "kernel", "ofm_depth", "ifm_depth", "stride", "ifm_nhwc", "ofm_nhwc", "chain")
MIN_GROUP = 25  # layers a group needs in the fitting set to get weights of its own


def features(g: LayerGeometry, c: LayerCost) -> np.ndarray:
    """The log-domain feature vector of one NPU layer (order: FEATURES)."""
    mem = list(c.memory_cycles.values())
    return np.log1p(np.array([
        math.e - 1, c.cycles, c.compute_cycles, max(mem, default=0), sum(mem), c.weight_cycles, g.ofm_elements,
        g.ifm_elements + g.ifm2_elements, g.macs, c.encoded_weight_bytes or 0, g.itemsize - 1,
        g.kernel[0] * g.kernel[1] - 1, g.ofm[2], g.ifm[2], g.stride[0] * g.stride[1] - 1, g.ifm_in_arena,
        g.ofm_in_arena, len(g.chain),
    ], dtype=np.float64))


def group_keys(g: LayerGeometry) -> tuple[str, str]:
    """Operator group (the TFLite builtin), and the kind it falls back to when that group is small."""
    return g.op, g.kind.value


@dataclass(frozen=True)
class Calibration:
    """Weight vectors per (configuration, group), with the configurations' family and MAC count."""

    weights: dict[str, dict[str, tuple[float, ...]]]
    configs: dict[str, tuple[str, int]]  # config -> (family, total MACs)

    def for_target(self, target: Target) -> dict[str, tuple[float, ...]] | None:
        if target.name in self.weights:
            return self.weights[target.name]
        same = [(abs(math.log2(m / target.npu.total_macs)), n) for n, (f, m) in self.configs.items()
                if f == target.family.value]
        return self.weights[min(same)[1]] if same else None


@lru_cache(maxsize=1)
def load_calibration(path: Path = CALIBRATION_FILE) -> Calibration | None:
    """The fitted calibration shipped with hwopt, or None when it has not been fitted."""
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    return Calibration({k: {g: tuple(w) for g, w in v.items()} for k, v in doc["weights"].items()},
                       {k: (v[0], int(v[1])) for k, v in doc["configs"].items()})


def calibrate(g: LayerGeometry, c: LayerCost, target: Target) -> LayerCost:
    """The layer's cost with its cycles from the fitted log-linear model; its compute, memory and weight
    terms are scaled alike, so cycles stay their maximum and the `bound` explanation is kept.
    Unchanged when no weights apply."""
    cal = load_calibration()
    if cal is None or c.placement != "npu" or c.cycles <= 0:
        return c
    if follows_vela(g) if target.family is not Family.ETHOS_U85 else u85_follows_vela(g, target):
        return c  # already Vela's own estimate: a fitted correction would only add noise
    table = cal.for_target(target)
    if table is None:
        return c
    op, kind = group_keys(g)
    w = next((table[k] for k in (op, kind, "*") if k in table), None)
    if not w:  # no weights, or the fit found the structural cycles better than any calibration
        return c
    cycles = max(1, round(math.exp(float(np.dot(w, features(g, c))))))
    s = cycles / c.cycles
    return replace(c, cycles=cycles, compute_cycles=round(c.compute_cycles * s),
                   memory_cycles={m: round(v * s) for m, v in c.memory_cycles.items()},
                   weight_cycles=round(c.weight_cycles * s))
