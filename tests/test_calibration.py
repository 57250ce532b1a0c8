"""The analytic model's calibration: fitted only on the fitting side of the generated corpus, shipped
for every Ethos-U configuration, and applied so that cycles stay the maximum of the scaled terms."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from hwopt.targets import resolve_target
from hwopt.targets.ethos_u import calibration
from hwopt.targets.ethos_u.analytic import ethos_u_layer_costs, structural_costs
from hwopt.targets.ethos_u.placement import ethos_u_geometry
from hwopt.testing import corpus as corpus_mod
from hwopt.testing.generator import network_model

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ("ethos-u55-32", "ethos-u55-64", "ethos-u55-128", "ethos-u55-256", "ethos-u65-256", "ethos-u65-512",
           "ethos-u85-128", "ethos-u85-256", "ethos-u85-512", "ethos-u85-1024", "ethos-u85-2048")


def test_shipped_calibration_covers_every_configuration() -> None:
    doc = json.loads(calibration.CALIBRATION_FILE.read_text())
    assert tuple(doc["features"]) == calibration.FEATURES  # fitted with the features the code computes
    cal = calibration.load_calibration()
    assert cal is not None
    for name in CONFIGS:
        table = cal.weights[name]
        assert "*" in table
        # convolutions are costed like Vela's own estimator (U55/U65 and U85) and never calibrated
        assert "CONV_2D" not in table
        assert all(len(w) in (0, len(calibration.FEATURES)) for w in table.values())  # empty: kept as is


def test_calibrated_cycles_are_the_max_of_scaled_terms() -> None:
    model = network_model(2)
    from hwopt.format.tflite_io import read_model

    m = read_model(model.data)
    for name in ("ethos-u55-128", "ethos-u85-512"):
        t = resolve_target(name)
        geo = ethos_u_geometry(m, t.family)
        for c, s in zip(ethos_u_layer_costs(m, t), structural_costs(geo, t), strict=True):
            if c.placement != "npu" or not c.cycles:
                continue
            assert c.bound == s.bound
            terms = [c.compute_cycles, c.weight_cycles, *c.memory_cycles.values()]
            assert max(terms) == pytest.approx(c.cycles, rel=0.01, abs=2)


def test_unknown_configuration_uses_nearest_of_its_family() -> None:
    import dataclasses

    cal = calibration.load_calibration()
    assert cal is not None
    t = resolve_target("ethos-u85-512")
    other = dataclasses.replace(t, name="my-u85-600", npu=dataclasses.replace(t.npu, macs=600))
    assert cal.for_target(other) is cal.weights["ethos-u85-512"]


def test_fit_reads_only_the_fitting_side(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sys.path.insert(0, str(ROOT))
    from tools import fit_analytic

    seen: list[str] = []
    real = corpus_mod.label

    def recording(name, data, target, cache):  # type: ignore[no-untyped-def]
        seen.append(name)
        return real(name, data, target, cache)

    monkeypatch.setattr(corpus_mod, "label", recording)
    out = tmp_path / "cal.json"
    assert fit_analytic.main(["--seed", "7", "--count", "16", "--configs", "ethos-u55-128", "--cache",
                              str(tmp_path / "labels"), "--out", str(out)]) == 0
    assert seen and not any(corpus_mod.is_validation(n, 0) for n in seen)
    doc = json.loads(out.read_text())
    assert set(doc["weights"]) == {"ethos-u55-128"} and "*" in doc["weights"]["ethos-u55-128"]


def test_operators_costed_like_vela_are_not_calibrated() -> None:
    from hwopt.format.tflite_io import read_model
    from hwopt.targets.ethos_u.analytic import costs_of
    from hwopt.targets.ethos_u.u55 import follows_vela

    m = read_model(network_model(3).data)
    t = resolve_target("ethos-u55-256")
    geo = ethos_u_geometry(m, t.family)
    followed = 0
    for g, c, s in zip(geo, costs_of(geo, t), structural_costs(geo, t), strict=True):
        if follows_vela(g) and s.placement == "npu":
            assert c == s
            followed += 1
    assert followed >= 5
