"""The leaves of the collaborative-optimization tree and the structure each one promises.

Names are the file stems written to the output directory; families group leaves the way
TFMOT's collaborative-optimization tables do (baseline, the float technique, QAT, the
combined QAT), plus hwopt's post-training enforce next to the baseline.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

# TFMOT 0.8's prune registry lists no prunable weights for DepthwiseConv2D; hwopt enforce keeps them
# dense too: with 9 weights per output channel, pruning them without retraining costs the most accuracy.
DENSE_OPS = frozenset({"DEPTHWISE_CONV_2D"})

LayerKey = tuple[int, int]  # (subgraph, operator index)


@dataclass(frozen=True)
class Technique:
    """One leaf: how it is made and what structure its int8 file must show."""

    name: str
    title: str
    recipe: str
    parent: str | None
    sparsity: bool  # promises >= the pruning target of zeros in the layers it prunes (see sparsity_scope)
    clusters: bool  # promises <= N distinct values per output channel (DepthwiseConv2D exempt)
    qat: bool  # accuracy column is the fake-quant model's
    trained: bool = True  # False: hwopt's post-training leaf
    # "layer": every pruned layer holds the target; "global": the pruned layers together hold it
    # (global magnitude ranking lets robust layers give more zeros than sensitive ones).
    sparsity_scope: Literal["layer", "global"] = "layer"
    dense_input_layer: bool = False  # the first weight layer (few weights, most sensitive) is not pruned
    sparsity_exempt_ops: frozenset[str] = DENSE_OPS  # operator types the technique never prunes


def sparsity_exempt(t: Technique, layers: Iterable[tuple[int, int, str]]) -> frozenset[LayerKey]:
    """The (subgraph, op index) of the weight layers `t` leaves dense, from (subgraph, op index, op type).

    The input layer is the first remaining weight layer in operator order; it stays prunable when it
    is the only one left, so the leaf always prunes something."""
    if not t.sparsity:
        return frozenset()
    rows = sorted(layers)
    exempt = {(sg, i) for sg, i, op in rows if op in t.sparsity_exempt_ops}
    rest = [(sg, i) for sg, i, _op in rows if (sg, i) not in exempt]
    if t.dense_input_layer and len(rest) > 1:
        exempt.add(rest[0])
    return frozenset(exempt)


LEAVES: tuple[Technique, ...] = (
    Technique("baseline", "Baseline", "float model -> PTQ int8", None, False, False, False),
    Technique("qat", "QAT", "quantize_model -> fine-tune", "baseline", False, False, True),
    Technique("pruned", "Pruned 50%", "prune_low_magnitude ConstantSparsity(0.5) -> fine-tune -> strip_pruning -> PTQ",
              "baseline", True, False, False),
    Technique("pqat", "PQAT", "pruned -> quantize_apply(Default8BitPrunePreserveQuantizeScheme) -> fine-tune",
              "pruned", True, False, True),
    Technique("clustered", "Clustered 16", "cluster_weights(16, KMEANS_PLUS_PLUS) -> fine-tune -> strip_clustering -> PTQ",
              "baseline", False, True, False),
    Technique("clustered_per_channel", "Clustered 16 per channel",
              "cluster_weights(16, cluster_per_channel=True) -> fine-tune -> strip_clustering -> PTQ",
              "baseline", False, True, False),
    Technique("cqat", "CQAT", "clustered 16 -> quantize_apply(Default8BitClusterPreserveQuantizeScheme()) -> fine-tune",
              "clustered", False, True, True),
    Technique("pruned_clustered", "Pruned + clustered 16",
              "pruned -> cluster_weights(16, preserve_sparsity=True) -> fine-tune -> strip_clustering -> PTQ",
              "pruned", True, True, False),
    Technique("pcqat", "PCQAT",
              "pruned + clustered -> quantize_apply(Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)) -> fine-tune",
              "pruned_clustered", True, True, True),
    Technique("enforce", "hwopt enforce",
              "baseline int8 -> hwopt enforce: prune 0.5 by global magnitude over the layers but DepthwiseConv2D and "
              "the input convolution, 16 clusters per Ethos-U weight stream keeping zeros, bias correction (no retraining)",
              "baseline", True, True, False, trained=False, sparsity_scope="global", dense_input_layer=True),
)

BY_NAME = {t.name: t for t in LEAVES}

FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Pruning and PQAT", ("baseline", "pruned", "qat", "pqat")),
    ("Clustering and CQAT", ("baseline", "clustered", "clustered_per_channel", "qat", "cqat")),
    ("Sparsity-preserving clustering and PCQAT", ("baseline", "pruned_clustered", "qat", "pcqat")),
    ("hwopt enforce (post-training, no retraining)", ("baseline", "pcqat", "enforce")),
)

# A converted pruned layer keeps its zeros (BN folding scales them by zero, symmetric int8 keeps 0),
# but quantization can only add zeros; 1% of slack absorbs layers whose size is not a multiple of 2.
SPARSITY_SLACK = 0.01
