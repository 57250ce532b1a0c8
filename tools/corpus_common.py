"""What the corpus tools share: the Ethos-U configurations, the cache folder and the real models."""

from __future__ import annotations

import os
from pathlib import Path

ETHOS_U_CONFIGS = ("ethos-u55-32", "ethos-u55-64", "ethos-u55-128", "ethos-u55-256", "ethos-u65-256",
                   "ethos-u65-512", "ethos-u85-128", "ethos-u85-256", "ethos-u85-512", "ethos-u85-1024",
                   "ethos-u85-2048")
DEFAULT_CACHE = Path(__file__).resolve().parents[1] / ".hwopt-cache" / "labels"


def models_dir(arg: Path | None) -> Path:
    if arg:
        return arg
    env = os.environ.get("HWOPT_SHARED_MODELS")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "models"


def shared_models(arg: Path | None) -> list[Path]:
    """The real int8/int16 models Vela can compile (not already compiled, not float)."""
    from hwopt.format.tflite_io import read_model
    from hwopt.ir import DType

    folder = models_dir(arg)
    if not folder.is_dir():
        return []
    out = []
    for p in sorted([*folder.glob("*.tflite"), *folder.glob("derived/*.tflite")]):
        m = read_model(p)
        if m.vela_compiled:
            continue
        dtypes = {t.dtype for sg in m.subgraphs for op in sg.operators for i in op.outputs
                  if (t := sg.tensor(i)) is not None}
        if dtypes & {DType.INT8, DType.INT16} and not all(d.is_float for d in dtypes):
            out.append(p)
    return out
