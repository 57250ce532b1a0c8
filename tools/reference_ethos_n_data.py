"""Reading a directory of Ethos-N78 reference data made with Arm's support library.

`cases.json` (layers with raw weights), `encoded/index.json` (the library's weight buffers and the
encoder request behind each) and `estimates.json` (its per-pass performance estimates).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwopt.targets.ethos_n.variants import VARIANTS, N78Variant

SCHEMA = "hwopt.reference/1"


class ReferenceError(Exception):
    """The reference directory is missing, incomplete or malformed (bad input, exit code 2)."""


def variant_of(name: str) -> N78Variant:
    """hwopt's variant for a library name such as `4TOPS_4PLE_RATIO`."""
    key = "ethos-n78-" + name.removesuffix("_RATIO").lower().replace("_", "-")
    if key not in VARIANTS:
        raise ReferenceError(f"unknown Ethos-N78 variant {name!r}")
    return VARIANTS[key]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ReferenceError(f"{path} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReferenceError(f"{path}: not valid JSON ({exc})") from None


@dataclass
class Reference:
    """The parsed reference directory."""

    root: Path
    cases: dict[str, dict[str, Any]]
    networks: dict[str, dict[str, Any]]
    index: dict[str, dict[str, Any]]
    estimates: dict[str, Any]


def load(directory: str | Path) -> Reference:
    """Read and sanity-check a reference directory; raises ReferenceError on bad input."""
    root = Path(directory)
    if not root.is_dir():
        raise ReferenceError(f"{root}: no such directory")
    cases_doc = _read_json(root / "cases.json")
    index_doc = _read_json(root / "encoded" / "index.json")
    estimates = _read_json(root / "estimates.json")
    try:
        cases = {c["name"]: c for c in cases_doc["single_layer_cases"]}
        networks = {n["name"]: n for n in cases_doc.get("networks", [])}
        index = index_doc["cases"]
        if not isinstance(estimates["single_layer"], dict):
            raise TypeError("single_layer")
    except (KeyError, TypeError) as exc:
        raise ReferenceError(f"{root}: unexpected reference layout (missing {exc})") from None
    for name in index:
        if name not in cases:
            raise ReferenceError(f"encoded/index.json names case {name!r} that cases.json does not hold")
    return Reference(root, cases, networks, index, estimates)


def _weights(case: dict[str, Any], req: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    wt = req["weights_tensor"]
    dtype = np.int8 if wt["dtype"] == "INT8_QUANTIZED" else np.uint8
    if req["weights_source"] == "internal":
        w = np.frombuffer(base64.b64decode(req["weights_data_b64"]), dtype=dtype).reshape(wt["shape"])
    else:  # "case" or "case_padded_with_zero_point": hwopt pads fully connected weights itself
        w = np.frombuffer(base64.b64decode(case["weights_b64"]), dtype=dtype)
        w = w.reshape(case["weights_tensor"]["shape"])
    if req["bias_source"] == "internal":
        bias = np.asarray(req["bias_data"], dtype=np.int64)
    else:
        bias = np.frombuffer(base64.b64decode(case["bias_b64_int32le"]), dtype="<i4").astype(np.int64)
    return w, bias


