"""`hwopt audit MODEL`: per-layer sparsity and cluster structure of the deployed file."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("audit", help="verify sparsity and cluster structure of an int8 .tflite",
                       description="Measure per-layer sparsity, distinct values (per tensor and per output "
                       "channel), 2:4 compliance and palette fit on the quantized weights of a TFLite model.")
    p.add_argument("model", help="the .tflite file")
    p.add_argument("--json", action="store_true", help="print the hwopt.audit/1 JSON report")
    p.add_argument("--expect-sparsity", type=float, metavar="F", help="every weight layer has at least this sparsity")
    p.add_argument("--expect-clusters", type=int, metavar="N", help="at most N distinct values per layer")
    p.add_argument("--per-channel", action="store_true", help="count --expect-clusters per output channel")
    p.add_argument("--expect-int8", action="store_true", help="weights int8 and no floating-point operators")
    deflate = p.add_mutually_exclusive_group()
    deflate.add_argument("--no-deflate", action="store_true",
                         help="leave out the DEFLATE size (deflate_bytes null)")
    deflate.add_argument("--exact-deflate", action="store_true",
                         help="compress the whole file for the exact DEFLATE size; files over 1 MiB otherwise "
                         "get a sampled estimate with a stated error bound (a full zlib pass is the slowest "
                         "part of auditing a large pruned model)")
    # No linear algebra in an audit: OpenBLAS need not start a thread per core as numpy loads.
    # Nothing on the audit path logs, and it leaves no thread, worker or file to clean up at exit.
    p.set_defaults(handler="hwopt.cli.run_audit:run", blas_threads=1, logs=False, fast_exit=True)
