"""`hwopt tree`: grow TFMOT's collaborative-optimization deployment tree and check every leaf.

Trains (or takes) a Keras model, produces every leaf of the tree (PTQ, QAT, pruning, PQAT,
clustering per tensor and per channel, CQAT, sparsity-preserving clustering, PCQAT) plus
hwopt's post-training `enforce`, converts each to full-int8 TFLite and measures it: LiteRT
top-1, DEFLATE size, Ethos-U encoded weights and cycles, and whether the int8 file still
shows the sparsity and clusters the technique promises.

Only this package imports TensorFlow, lazily, with `TF_USE_LEGACY_KERAS=1` set first
(TFMOT 0.8 needs Keras 2); it needs the optional extra `hwopt[train]`.
"""

from __future__ import annotations

from hwopt.tree.runner import DEFAULT_TARGET, TreeOptions, TreeResult, run_tree, validate, write_tree

__all__ = ["DEFAULT_TARGET", "TreeOptions", "TreeResult", "run_tree", "validate", "write_tree"]
