"""Fit the Ethos-U analytic model's calibration on the fitting side of the generated corpus.

For every configuration, collects the structural model's terms of each NPU layer of the fitting-side
models (the validation side and real models are never read) and Vela's cycles from the label cache,
then fits log(cycles) = w . features (least absolute error, ridge-regularised; on U55/U65 only for
operators not costed like Vela's own estimator) per operator group (the TFLite builtin when
it has enough layers, else its kind, else all layers), dropping gross outliers once; a group whose
structural cycles already score better on the fitting side gets no weights (kept as they are). Writes
targets/ethos_u/calibration.json (deterministic: sorted keys, rounded weights).

    nice python tools/fit_analytic.py [--seed 1] [--count 1000] [--split-seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.corpus_common import add_corpus_arguments, corpus_items, corpus_targets, labelled  # noqa: E402

RIDGE = 1e-2
IRLS_STEPS = 20


def ridge(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least absolute log error (the median |error| the model is judged by), by iteratively
    reweighted ridge regression from the least-squares start; residuals beyond 4 MADs of that
    start are dropped first."""
    reg = RIDGE * np.eye(x.shape[1])
    reg[0, 0] = 0.0
    w = np.linalg.solve(x.T @ x + reg, x.T @ y)
    r = y - x @ w
    mad = float(np.median(np.abs(r - np.median(r)))) or 1e-9
    keep = np.abs(r - np.median(r)) <= 4 * 1.4826 * mad
    if keep.sum() >= x.shape[1] * 2:
        x, y = x[keep], y[keep]
        w = np.linalg.solve(x.T @ x + reg, x.T @ y)
    for _ in range(IRLS_STEPS):
        a = 1.0 / np.maximum(np.abs(y - x @ w), 1e-3)
        w = np.linalg.solve((x * a[:, None]).T @ x + reg, (x * a[:, None]).T @ y)
    return w


def score(pred: np.ndarray, log_label: np.ndarray) -> float:
    """Median plus 90th percentile of |predicted - label| / label: the figures the model is judged by."""
    rel = np.abs(pred - np.exp(log_label)) / np.exp(log_label)
    return float(np.median(rel) + np.percentile(rel, 90))


def render(doc: dict[str, object]) -> str:
    """JSON with one line per weight vector (readable diffs, deterministic)."""
    weights = doc["weights"]
    assert isinstance(weights, dict)
    head = {k: v for k, v in doc.items() if k != "weights"}
    lines = ["{"] + [f" {json.dumps(k)}: {json.dumps(v, sort_keys=True)}," for k, v in sorted(head.items())]
    lines.append(' "weights": {')
    for i, (cfg, table) in enumerate(sorted(weights.items())):
        lines.append(f"  {json.dumps(cfg)}: {{")
        rows = sorted(table.items())
        lines += [f"   {json.dumps(g)}: {json.dumps(w)}{',' if j < len(rows) - 1 else ''}" for j, (g, w) in enumerate(rows)]
        lines.append("  }" + ("," if i < len(weights) - 1 else ""))
    lines += [" }", "}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from hwopt.targets.descriptor import Family
    from hwopt.targets.ethos_u.analytic import structural_costs
    from hwopt.targets.ethos_u.calibration import CALIBRATION_FILE, FEATURES, MIN_GROUP, features, group_keys
    from hwopt.targets.ethos_u.placement import ethos_u_geometry
    from hwopt.targets.ethos_u.u55 import follows_vela
    from hwopt.targets.ethos_u.u85_ops import follows_vela as u85_follows_vela

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_corpus_arguments(ap)
    ap.add_argument("--out", type=Path, default=CALIBRATION_FILE)
    args = ap.parse_args(argv)
    targets = corpus_targets(args)
    rows: dict[str, list[tuple[str, str, np.ndarray, float]]] = defaultdict(list)
    fitting = corpus_items(args, "fitting")
    for _, model, pairs in labelled(fitting, targets, args.cache):
        geo = {f: ethos_u_geometry(model, f) for f in {t.family for t in targets}}
        for t, labels in pairs:
            by_index = {g.op_index: (g, c) for g, c in zip(geo[t.family], structural_costs(geo[t.family], t),
                                                            strict=True) if g.subgraph == 0}
            for la in labels.layers:
                if la.op_index not in by_index or la.placement != "npu" or la.cycles <= 0:
                    continue
                g, c = by_index[la.op_index]
                if follows_vela(g) if t.family is not Family.ETHOS_U85 else u85_follows_vela(g, t):
                    continue  # costed like Vela's own estimator: not calibrated
                if c.placement != "npu" or c.cycles <= 0:
                    continue
                op, kind = group_keys(g)
                rows[t.name].append((op, kind, features(g, c), float(np.log(la.cycles))))
    weights: dict[str, dict[str, list[float]]] = {}
    for t in targets:
        data = rows[t.name]
        groups: dict[str, list[int]] = defaultdict(list)
        for i, (op, kind, _, _) in enumerate(data):
            groups[op].append(i)
            groups[kind].append(i)
            groups["*"].append(i)
        table = {}
        for key, idx in sorted(groups.items()):
            if len(idx) < MIN_GROUP and key != "*":
                continue
            x = np.stack([data[i][2] for i in idx])
            y = np.array([data[i][3] for i in idx])
            w = ridge(x, y)
            # keep the structural cycles where they follow Vela's estimator (U55/U65) and already fit the
            # group better than the calibration
            keep = t.family is not Family.ETHOS_U85 and score(np.expm1(x[:, 1]), y) <= score(np.exp(x @ w), y)
            table[key] = [] if keep else [
                float(f"{v:.6g}") for v in w]
        weights[t.name] = table
        print(f"{t.name}: {len(data)} layers, {len(table)} groups")
    doc = {"features": list(FEATURES), "fitted_on": f"generated corpus seed {args.seed}, {len(fitting)} fitting-side "
           f"models (split seed {args.split_seed})", "configs": {t.name: [t.family.value, t.npu.total_macs]
                                                                 for t in targets}, "weights": weights}
    args.out.write_text(render(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
