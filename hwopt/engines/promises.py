"""Check that an enforced model keeps every property its pipeline promised.

A later pass can undo an earlier one (clustering without a zero centroid moves pruned zeros
back), so the result is checked against each request: per pruned layer at least the requested
sparsity (or 2:4 / the global share), per clustered group at most k values. A broken promise
is an error finding (exit 1), never a silently weaker model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from hwopt.analysis.layers import WeightLayer, zero_corrected_tensor
from hwopt.analysis.stats import check_2_4
from hwopt.ir import Model
from hwopt.passes._common import layers_to_process
from hwopt.passes.cluster import ClusterPass, distinct_per_group
from hwopt.passes.manager import Pass
from hwopt.passes.prune import PrunePass
from hwopt.records import Finding, Severity


def keep_pruned_zeros(passes: Sequence[Pass]) -> list[Pass]:
    """Cluster passes after a prune keep zero as a centroid unless told otherwise (preserve_zero=false)."""
    out: list[Pass] = []
    pruned = False
    for p in passes:
        if isinstance(p, ClusterPass) and p.preserve_zero is None and pruned:
            p = dataclasses.replace(p, preserve_zero=True)
        pruned = pruned or isinstance(p, PrunePass)
        out.append(p)
    return out


def _prune(model: Model, p: PrunePass) -> list[Finding]:
    out: list[Finding] = []
    layers = layers_to_process(model, p.skip)[0]
    if p.pattern == "2:4":
        for wl in layers:
            if wl.in_axis is not None and check_2_4(zero_corrected_tensor(wl.weights(model)), wl.in_axis)[0] is False:
                out.append(_broken(wl, "is no longer 2:4 sparse"))
        return out
    if p.pattern == "block":
        layers = [wl for wl in layers if wl.in_axis is not None]
    counts = [(wl, int(np.count_nonzero(zero_corrected_tensor(wl.weights(model)) == 0)), wl.weights(model).elements) for wl in layers]
    if p.scope == "global":
        zeros, total = sum(c[1] for c in counts), sum(c[2] for c in counts)
        need = round(p.sparsity * total) if p.pattern == "unstructured" else int(p.sparsity * total * 0.98)
        if total and zeros < need:
            out.append(Finding(Severity.ERROR, "promise-not-kept",
                               f"global sparsity {zeros / total:.1%} is below the requested {p.sparsity:.1%}"))
        return out
    for wl, zeros, n in counts:
        # Unstructured pruning zeroes round(s·n) weights; blocks may fall short by a partial block.
        need = round(p.sparsity * n) if p.pattern == "unstructured" else int(p.sparsity * n) - p.block * max(1, n // 1024)
        if n and zeros < need:
            out.append(_broken(wl, f"has {zeros / n:.1%} zeros, below the requested sparsity "
                                                   f"{p.sparsity:.1%}"))
    return out


def _cluster(model: Model, p: ClusterPass) -> list[Finding]:
    out: list[Finding] = []
    for wl in layers_to_process(model, p.skip)[0]:
        n = distinct_per_group(model, wl, p.granularity, p.effective_target)
        if n > p.k:
            out.append(_broken(wl, f"has {n} distinct values per {p.granularity}, more than k={p.k}"))
    return out


def _broken(wl: WeightLayer, what: str) -> Finding:
    return Finding(Severity.ERROR, "promise-not-kept", f"{wl.op} #{wl.op_index} {what}", subgraph=wl.subgraph,
                   op_index=wl.op_index)


def check_promises(model: Model, passes: Sequence[Pass]) -> list[Finding]:
    """Error findings for every requested property the final model does not have."""
    out: list[Finding] = []
    for p in passes:
        if isinstance(p, PrunePass):
            out.extend(_prune(model, p))
        elif isinstance(p, ClusterPass):
            out.extend(_cluster(model, p))
    return out
