"""What the corpus tools share: their options, the Ethos-U configurations, the cache folder, the
generated corpus and its split, the labelled-model loop and the real models."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hwopt.ir import Model
    from hwopt.targets import Target
    from hwopt.testing.corpus import Labels

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


def add_corpus_arguments(ap: argparse.ArgumentParser, *, split: bool = True, models: bool = False) -> None:
    """The corpus options every corpus tool takes: generator seed and size, split seed, label cache,
    configurations (and the folder of real models)."""
    ap.add_argument("--seed", type=int, default=1, help="generator seed of the corpus")
    ap.add_argument("--count", type=int, default=1000, help="models in the corpus")
    if split:
        ap.add_argument("--split-seed", type=int, default=0, help="seed of the fitting/validation split")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="Vela label cache")
    if models:
        ap.add_argument("--models", type=Path, default=None, help="folder of real models (default ../shared/models)")
    ap.add_argument("--configs", default=",".join(ETHOS_U_CONFIGS), help="comma-separated Ethos-U configurations")


def corpus_targets(args: argparse.Namespace) -> list[Target]:
    from hwopt.targets import resolve_target

    return [resolve_target(c) for c in args.configs.split(",")]


def corpus_items(args: argparse.Namespace, side: str | None = None) -> list[tuple[str, bytes]]:
    """(name, bytes) of the generated corpus, or of one side ("fitting" | "validation") of its split."""
    from hwopt.testing.corpus import is_validation
    from hwopt.testing.generator import corpus

    return [(m.name, m.data) for m in corpus(args.seed, args.count)
            if side is None or is_validation(m.name, args.split_seed) == (side == "validation")]


def labelled(items: Iterable[tuple[str, bytes]], targets: list[Target],
             cache: Path) -> Iterator[tuple[str, Model, list[tuple[Target, Labels]]]]:
    """Each model, read once, with the Vela labels of every configuration that compiled it
    (labels missing from the cache are compiled now)."""
    from hwopt.format.tflite_io import read_model
    from hwopt.testing.corpus import label

    for name, data in items:
        pairs = [(t, labels) for t in targets if (labels := label(name, data, t, cache)[0]).error is None]
        yield name, read_model(data), pairs
