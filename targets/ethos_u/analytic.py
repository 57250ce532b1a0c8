"""hwopt's own Ethos-U cost model: per-layer cycles from the descriptor alone (no compiler run).

Geometry comes from `hwopt.targets.geometry` with Ethos-U placement; the U55/U65 and U85 cost models
live in `u55` and `u85`; this module dispatches one operator to the model of its generation.
"""

from __future__ import annotations

from hwopt.ir import Model
from hwopt.targets.descriptor import Family, Target
from hwopt.targets.ethos_u.calibration import calibrate
from hwopt.targets.ethos_u.fm_placement import place_feature_maps
from hwopt.targets.ethos_u.placement import ethos_u_geometry
from hwopt.targets.ethos_u.u55 import u55_layer_cost
from hwopt.targets.ethos_u.u55_overlap import overlap_weight_streams
from hwopt.targets.ethos_u.u85 import u85_layer_cost
from hwopt.targets.ethos_u.u85_lowering import lowered_cost
from hwopt.targets.ethos_u.u85_multiplier import multiplier_cost
from hwopt.targets.ethos_u.u85_ops import overlap_u85_weights, vela_style_cost
from hwopt.targets.ethos_u.u85_softmax import softmax_cost
from hwopt.targets.geometry import LayerCost, LayerGeometry, OpKind


def structural_cost(g: LayerGeometry, target: Target) -> LayerCost:
    """The structural model's cost of one operator (before calibration): CPU and removed operators
    cost nothing on the NPU, the rest by generation."""
    if g.kind is OpKind.CPU:
        return LayerCost(g.subgraph, g.op_index, g.op, "cpu", 0, 0, {}, 0, 0, None, 0, "cpu")
    u85 = target.family is Family.ETHOS_U85
    if (g.kind is OpKind.NOP and not g.copies) or (g.chained and not u85):  # removed or fused
        return LayerCost(g.subgraph, g.op_index, g.op, "npu", 0, 0, {}, 0, 0, None, 0, "none")
    if target.family is Family.ETHOS_U85:
        return (multiplier_cost(g, target) or vela_style_cost(g, target) or softmax_cost(g, target)
                or lowered_cost(g, target) or u85_layer_cost(g, target))
    return u55_layer_cost(g, target)


def structural_costs(geometry: list[LayerGeometry], target: Target) -> list[LayerCost]:
    """The structural costs of a model's operators in order: each operator's own, then (U55/U65) the
    weight DMA the preceding operation does not hide."""
    return _placed_costs(_placed(geometry, target), target)


def _placed(geometry: list[LayerGeometry], target: Target) -> list[LayerGeometry]:
    """The geometry with the feature-map memories Vela gives them (U85; U55/U65 as it is)."""
    return place_feature_maps(geometry, target) if target.family is Family.ETHOS_U85 else geometry


def _placed_costs(placed: list[LayerGeometry], target: Target) -> list[LayerCost]:
    costs = [structural_cost(g, target) for g in placed]
    if target.family is Family.ETHOS_U85:
        return overlap_u85_weights(placed, costs, target)
    return overlap_weight_streams(placed, costs, target)


def costs_of(geometry: list[LayerGeometry], target: Target) -> list[LayerCost]:
    """Per-operator costs of already-extracted geometry (a batch reuses one geometry for many targets):
    the structural terms, calibrated to the configuration. The calibration reads no feature-map memory,
    so it takes the placed geometry, whose lowered operations the structural terms already derived."""
    placed = _placed(geometry, target)
    return [calibrate(g, c, target) for g, c in zip(placed, _placed_costs(placed, target), strict=True)]


def ethos_u_layer_costs(model: Model, target: Target) -> list[LayerCost]:
    """Analytic per-operator costs of a whole model on an Ethos-U target."""
    return costs_of(ethos_u_geometry(model, target.family), target)
