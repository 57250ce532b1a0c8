"""`hwopt tree -o DIR`: grow TFMOT's collaborative-optimization tree and check every int8 leaf."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("tree", help="train every TFMOT collaborative-optimization leaf and check it on the NPU",
                       description="Train (or take) a Keras classifier and produce every leaf of TFMOT's collaborative "
                       "optimization tree (PTQ, QAT, pruning, PQAT, clustering per tensor and per channel, CQAT, "
                       "sparsity-preserving clustering, PCQAT) plus hwopt's post-training enforce, each as a "
                       "full-int8 .tflite; report top-1, DEFLATE compression, Ethos-U encoded weights, cycles and "
                       "whether each int8 file keeps the structure its technique promises. Needs hwopt[train]; "
                       "TensorFlow is loaded with TF_USE_LEGACY_KERAS=1 (TFMOT needs Keras 2).")
    p.add_argument("--model", metavar="FILE", help="a trained Keras 2 model (.keras or .h5); default: the built-in DS-CNN")
    p.add_argument("--data", metavar="NPZ", help="x_train, y_train, x_test, y_test; default: scikit-learn's digits")
    p.add_argument("--target", default="ethos-u55-128", metavar="NAME", help="Ethos-U target (default: %(default)s)")
    p.add_argument("--epochs", type=int, metavar="N",
                   help="float training epochs (fine-tuning uses N/4); default 60 (12 with --quick), 0 for a given --model")
    p.add_argument("--quick", action="store_true", help="few epochs, for CI (a few minutes on 2 cores)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same files (default: 0)")
    p.add_argument("--metrics", choices=("auto", "hwopt", "vela"), default="auto",
                   help="who measures encoded weights and cycles: hwopt encode+estimate, Vela's totals, or auto")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for the leaves, tree.json and tree.md")
    p.add_argument("--json", action="store_true", help="print the hwopt.tree/1 JSON report")
    p.set_defaults(handler="hwopt.cli.run_tree:run")
