"""Pareto fronts of a sweep: encoded weight size and latency (lower is better), fidelity (higher).

Latency is inference time, not cycles, so targets with different clocks compare fairly.
Fidelity joins the objectives only when every compared record has it (data was given).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hwopt.sweeps.records import Pareto, ParetoPoint, SweepRecord

Objective = tuple[float, ...]


def objectives(with_fidelity: bool) -> list[str]:
    names = ["encoded_weight_bytes", "inference_s"]
    return [*names, "fidelity"] if with_fidelity else names


def _vector(r: SweepRecord, with_fidelity: bool) -> Objective:
    assert r.encoded_weight_bytes is not None and r.inference_s is not None
    v: Objective = (float(r.encoded_weight_bytes), float(r.inference_s))
    if with_fidelity:
        assert r.fidelity is not None
        v = (*v, -r.fidelity.score)  # maximise fidelity = minimise its negative
    return v


def _dominates(p: Objective, q: Objective) -> bool:
    return all(a <= b for a, b in zip(p, q, strict=True)) and p != q


def front(records: Sequence[SweepRecord], with_fidelity: bool) -> list[SweepRecord]:
    """The records no other record dominates, in the order given (ties are all kept)."""
    vecs = [_vector(r, with_fidelity) for r in records]
    return [r for r, v in zip(records, vecs, strict=True) if not any(_dominates(w, v) for w in vecs)]


def _group(records: Sequence[SweepRecord], key: Callable[[SweepRecord], str]) -> dict[str, list[SweepRecord]]:
    out: dict[str, list[SweepRecord]] = {}
    for r in records:
        out.setdefault(key(r), []).append(r)
    return {k: out[k] for k in sorted(out)}


def pareto(records: Sequence[SweepRecord]) -> Pareto:
    """Per-target fronts, per-model cross-target fronts and each model's fastest front point."""
    ok = [r for r in records if r.ok and r.encoded_weight_bytes is not None and r.inference_s is not None]
    with_fid = bool(ok) and all(r.fidelity is not None for r in ok)

    def point(r: SweepRecord) -> ParetoPoint:
        return ParetoPoint(r.model, r.pipeline, r.target)

    per_target = {t: [point(r) for r in front(rs, with_fid)] for t, rs in _group(ok, lambda r: r.target).items()}
    per_model: dict[str, list[ParetoPoint]] = {}
    fastest: dict[str, ParetoPoint] = {}
    for m, rs in _group(ok, lambda r: r.model).items():
        f = front(rs, with_fid)
        per_model[m] = [point(r) for r in f]
        best = min(f, key=lambda r: (r.inference_s, r.encoded_weight_bytes, r.pipeline, r.target))
        fastest[m] = point(best)
    return Pareto(objectives(with_fid), per_target, per_model, fastest)
