"""The batch estimate API: many (model, target) pairs in one process give exactly the reports of
one-at-a-time estimates, with each model read and reduced to geometry once."""

from __future__ import annotations

from pathlib import Path

import hwopt
from hwopt.engines import estimate as estimate_engine
from hwopt.records import dumps
from hwopt.targets import resolve_target
from hwopt.testing.generator import layer_model, network_model

TARGETS = ("ethos-u55-128", "ethos-u65-512", "ethos-u85-256", "ethos-n78-4tops-4ple")


def test_batch_equals_single_estimates(monkeypatch: object) -> None:
    models: list[bytes] = [network_model(0).data, network_model(2).data, layer_model(4).data]
    calls = {"geometry": 0}
    real = estimate_engine.ethos_u_geometry

    def counting(model, family, stats=None):  # type: ignore[no-untyped-def]
        calls["geometry"] += 1
        return real(model, family, stats)

    monkeypatch.setattr(estimate_engine, "ethos_u_geometry", counting)  # type: ignore[attr-defined]
    batch = hwopt.estimate_batch(models, list(TARGETS), engine="analytic")
    assert calls["geometry"] == len(models) * 2  # once per model and Ethos-U geometry (u55 and u65 alike, u85)
    assert len(batch) == len(models) and all(len(row) == len(TARGETS) for row in batch)
    for data, row in zip(models, batch, strict=True):
        for name, report in zip(TARGETS, row, strict=True):
            single = hwopt.estimate(data, name, engine="analytic")
            assert dumps(report) == dumps(single)


def test_batch_runs_vela_pairs_too(tmp_path: Path) -> None:
    data = layer_model(3).data
    t = resolve_target("ethos-u55-128")
    [vela] = estimate_engine.estimate_batch([(data, t)], engine="vela")
    assert vela.engine == "vela" and dumps(vela) == dumps(estimate_engine.estimate(data, t, "vela"))
