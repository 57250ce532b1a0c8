"""The one measurement pipeline, OpRef, the fd silencer and the one top-1."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

from hwopt._quiet import captured_fds, quiet_fds
from hwopt.engines.estimate import LayerEstimate
from hwopt.engines.fidelity import accuracy, top1
from hwopt.engines.measure import measure
from hwopt.errors import UnsupportedModelError
from hwopt.records import OpRef, to_jsonable
from hwopt.targets import resolve_target

EXAMPLE = Path(__file__).resolve().parent.parent / "hwopt" / "example" / "example_int8.tflite"


def test_measure_joins_vela_rows_with_the_audit() -> None:
    m = measure(EXAMPLE, resolve_target("ethos-u55-128"))
    assert m.audit is not None and m.vela is not None and m.label == str(EXAMPLE)
    rows = m.rows()
    ops = m.model.subgraphs[0].operators
    assert [r.op_index for r, _ in rows] == list(range(len(ops)))  # every input operator, in order
    weights = {la.op_key for la in m.audit.layers}
    for r, la in rows:
        assert r.op == ops[r.op_index].op
        assert (la is not None) == (r.op_key in weights)
        if la is not None:
            assert la.ref == r.ref
    # the Vela totals are what a direct compile of the same bytes gives
    from hwopt.targets.ethos_u.vela_engine import compile_model

    assert compile_model(EXAMPLE.read_bytes(), m.target).perf == m.vela.perf


def test_measure_stages_and_checks_run_in_order() -> None:
    heard: list[str] = []

    def refuse(_model: object) -> None:
        heard.append("check")
        raise UnsupportedModelError("no")

    with pytest.raises(UnsupportedModelError, match="no"):
        measure(EXAMPLE.read_bytes(), resolve_target("ethos-u55-128"), check=refuse, progress=heard.append)
    assert heard == ["check"]  # nothing expensive ran before the caller's check
    heard.clear()
    m = measure(EXAMPLE.read_bytes(), resolve_target("ethos-u55-128"), audit=False, progress=heard.append)
    assert heard == ["vela"] and m.audit is None and m.label == "<bytes>"


def test_an_interrupted_audit_stops_the_compile_beside_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Vela runs in the worker while the audit runs here; an interrupt in the audit ends the
    worker's call at once instead of waiting for the compile to finish."""
    import time

    import hwopt.engines.measure as measure_engine
    from hwopt import isolation

    def slow_compile(*_args: object, **_kwargs: object) -> object:
        return isolation.call("time:sleep", 60, library="Vela")  # a compile that would take a minute

    def interrupted(*_args: object, **_kwargs: object) -> object:
        time.sleep(0.5)  # the worker call is under way
        raise KeyboardInterrupt

    monkeypatch.setattr(measure_engine, "compile_model", slow_compile)
    monkeypatch.setattr(measure_engine, "audit_model", interrupted)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        measure(EXAMPLE, resolve_target("ethos-u55-128"))
    assert time.monotonic() - start < 20
    monkeypatch.undo()  # the next call compiles for real, in a fresh worker
    assert measure(EXAMPLE, resolve_target("ethos-u55-128"), audit=False).vela is not None


def test_measure_refuses_a_vela_compiled_model(shared_models: Path) -> None:
    path = shared_models / "person_detect_vela.tflite"
    with pytest.raises(UnsupportedModelError, match=r"already compiled by Vela.*gate the model given to Vela"):
        measure(path, resolve_target("ethos-u55-128"), action="gate")


def test_every_per_layer_record_is_an_opref_and_stays_flat_in_json() -> None:
    rec = LayerEstimate(0, 3, "CONV_2D", "npu", 10, 9, 100, 0, None, "compute", 0.5, {})
    assert isinstance(rec, OpRef) and rec.op_key == (0, 3) and rec.ref == OpRef(0, 3, "CONV_2D")
    data = to_jsonable(rec)
    assert list(data)[:4] == ["subgraph", "op_index", "op", "placement"]
    from hwopt.analysis.layers import WeightLayer
    from hwopt.engines.audit import LayerAudit
    from hwopt.engines.check import OperatorCheck
    from hwopt.engines.compile import CompileLayer
    from hwopt.engines.encode_layer import LayerEncoding
    from hwopt.engines.enforce import LayerChange
    from hwopt.engines.gate import LayerMetrics
    from hwopt.targets.ethos_u.vela_engine import VelaOpRow

    for cls in (WeightLayer, LayerAudit, OperatorCheck, CompileLayer, LayerEncoding, LayerChange, LayerMetrics,
                VelaOpRow, LayerEstimate):
        assert issubclass(cls, OpRef), cls
        names = [f.name for f in dataclasses.fields(cls)]
        assert names[:3] == ["subgraph", "op_index", "op"] and names.count("op_index") == 1, cls


def test_captured_and_quiet_fds() -> None:
    with captured_fds() as text:
        os.write(1, b"to stdout\n")
        os.write(2, b"to stderr\n")
    assert text == ["to stdout\nto stderr\n"]
    with captured_fds((1,)) as outer:
        with quiet_fds((1,)):
            os.write(1, b"gone\n")
        with quiet_fds((1,), enabled=False):
            os.write(1, b"kept\n")
    assert outer == ["kept\n"]


def test_top1_and_accuracy_by_hand() -> None:
    outputs = np.array([[[0.1, 0.7, 0.2]], [[0.9, 0.05, 0.05]], [[0.2, 0.2, 0.6]]])  # [N, 1, classes]
    assert top1(outputs).tolist() == [1, 0, 2]
    assert accuracy(top1(outputs), np.array([1, 1, 2])) == pytest.approx(2 / 3)
