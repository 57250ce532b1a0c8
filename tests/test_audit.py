"""Golden audit figures on the shared models, computed independently from the flatbuffer.

The reference figures come straight from the generated accessor API (no object-API unpack,
no hwopt.analysis.stats), with a plain per-channel loop, and are checked against the audit report and
against the facts the shared models' MANIFEST states.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import ROOT, model_id, shared_model_paths

from hwopt._generated.tflite.Model import Model as FbModel
from hwopt.engines.audit import SCHEMA, Expectations, audit, audit_model, deflate_size
from hwopt.errors import UsageError
from hwopt.format.tflite_io import read_model
from hwopt.records import dumps

CONV, DEPTHWISE, FC = 3, 4, 9
NP_TYPES = {9: np.int8, 3: np.uint8, 7: np.int16}
EXAMPLE = ROOT / "hwopt" / "example" / "example_int8.tflite"


@dataclass(frozen=True)
class Filter:
    """Reference figures of one filter tensor, from the raw flatbuffer."""

    subgraph: int
    op_index: int
    elements: int
    zeros: int
    raw_zeros: int  # q == 0, ignoring the zero point
    unique: int
    max_unique_per_channel: int
    zero_channels: int
    zero_points: tuple[int, ...]


def reference_filters(path: Path) -> list[Filter]:
    """CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED integer weights, measured with numpy."""
    data = path.read_bytes()
    fb = FbModel.GetRootAs(data, 0)
    codes = []
    for i in range(fb.OperatorCodesLength()):
        oc = fb.OperatorCodes(i)
        codes.append(max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()))
    out = []
    for s in range(fb.SubgraphsLength()):
        sg = fb.Subgraphs(s)
        for o in range(sg.OperatorsLength()):
            op = sg.Operators(o)
            code = codes[op.OpcodeIndex()]
            if code not in (CONV, DEPTHWISE, FC):
                continue
            t = sg.Tensors(op.Inputs(1))
            if t.Type() not in NP_TYPES:
                continue
            raw = fb.Buffers(t.Buffer()).DataAsNumpy()
            if isinstance(raw, int):  # no data: not a constant
                continue
            shape = tuple(int(d) for d in t.ShapeAsNumpy())
            q = np.frombuffer(raw.tobytes(), dtype=NP_TYPES[t.Type()]).reshape(shape).astype(np.int64)
            out_axis = 3 if code == DEPTHWISE else 0
            zq = t.Quantization()
            zps = np.atleast_1d(zq.ZeroPointAsNumpy()).astype(np.int64) if zq is not None else np.zeros(1, np.int64)
            if zps.size > 1:
                view = [1] * len(shape)
                view[out_axis] = zps.size  # per-channel zero points run along the output axis
                corrected = q - zps.reshape(view)
            else:
                corrected = q - (int(zps[0]) if zps.size else 0)
            per_channel = [np.take(corrected, c, axis=out_axis) for c in range(shape[out_axis])]
            out.append(Filter(
                subgraph=s, op_index=o, elements=q.size, zeros=int((corrected == 0).sum()),
                raw_zeros=int((q == 0).sum()), unique=len(set(corrected.ravel().tolist())),
                max_unique_per_channel=max(len(set(ch.ravel().tolist())) for ch in per_channel),
                zero_channels=sum(1 for ch in per_channel if not ch.any()),
                zero_points=tuple(sorted(set(zps.tolist()))),
            ))
    return out


def _layers_by_op(path: Path) -> dict[tuple[int, int], object]:
    return {(la.subgraph, la.op_index): la for la in audit(path).layers}


@pytest.mark.parametrize("path", shared_model_paths(int8_only=True), ids=model_id)
def test_layer_figures_match_reference(path: Path) -> None:
    ref = reference_filters(path)
    assert ref, "every int8 shared model has conv or FC filters"
    layers = _layers_by_op(path)
    for f in ref:
        la = layers[(f.subgraph, f.op_index)]
        assert la.elements == f.elements  # type: ignore[attr-defined]
        assert la.sparsity == pytest.approx(f.zeros / f.elements, abs=1e-12)  # type: ignore[attr-defined]
        assert la.unique_values == f.unique  # type: ignore[attr-defined]
        assert la.max_unique_per_channel == f.max_unique_per_channel  # type: ignore[attr-defined]
        assert la.zero_channels == f.zero_channels  # type: ignore[attr-defined]


def _model(shared: Path, name: str) -> Path:
    path = shared / f"{name}.tflite"
    if not path.exists():
        pytest.skip(f"{name}.tflite not in the shared models folder")
    return path


class TestManifestFacts:
    def test_pruned50_exactly_half_zeros(self, shared_models: Path) -> None:
        path = _model(shared_models, "derived/ic_resnet8_pruned50_int8")
        ref = reference_filters(path)
        assert all(round(100 * f.zeros / f.elements, 1) == 50.0 for f in ref)
        report = audit(path)
        assert all(round(100 * la.sparsity, 1) == 50.0 for la in report.layers if la.op != "DEPTHWISE_CONV_2D")
        assert not audit(path, Expectations(sparsity=0.49)).failed

    def test_clustered16(self, shared_models: Path) -> None:
        path = _model(shared_models, "derived/ic_resnet8_clustered16_int8")
        ref = reference_filters(path)
        assert max(f.max_unique_per_channel for f in ref) <= 16
        assert min(f.unique for f in ref) >= 38 and max(f.unique for f in ref) <= 72
        report = audit(path)
        assert all(la.max_unique_per_channel <= 16 for la in report.layers)
        assert all(38 <= la.unique_values <= 72 for la in report.layers)
        rules = {f.rule for f in report.findings}
        assert "clusters-split-by-quantization" in rules
        assert not audit(path, Expectations(clusters=16, per_channel=True)).failed
        assert audit(path, Expectations(clusters=16)).failed  # per tensor: 38-72 > 16

    def test_clustered8_per_channel(self, shared_models: Path) -> None:
        path = _model(shared_models, "derived/ic_resnet8_clustered8_perchannel_int8")
        ref = {(f.subgraph, f.op_index): f for f in reference_filters(path)}
        report = audit(path)
        for la in report.layers:
            if la.op == "CONV_2D":
                assert la.max_unique_per_channel <= 8
                assert la.max_unique_per_channel == ref[(la.subgraph, la.op_index)].max_unique_per_channel
                if la.elements >= 1024:
                    assert 83 <= la.unique_values <= 206

    def test_vww_natural_sparsity(self, shared_models: Path) -> None:
        path = _model(shared_models, "mlperftiny_vww_96_int8")
        ref = reference_filters(path)
        zeros, total = sum(f.zeros for f in ref), sum(f.elements for f in ref)
        assert round(100 * zeros / total, 1) == 82.8
        assert sum(f.zero_channels for f in ref) == 971
        report = audit(path)
        assert round(100 * report.summary.sparsity, 1) == 82.8
        assert report.summary.zero_channels == 971
        assert any(f.rule == "zero-channels" for f in report.findings)

    def test_uint8_counts_zero_points(self, shared_models: Path) -> None:
        path = _model(shared_models, "mobilenet_v2_1.0_224_quantized_1_default_1")
        ref = reference_filters(path)
        assert len(ref) == 53 and all(0 not in f.zero_points for f in ref)
        layers = _layers_by_op(path)
        for f in ref:
            la = layers[(f.subgraph, f.op_index)]
            assert la.dtype == "uint8" and la.quantization == "per-tensor"  # type: ignore[attr-defined]
            assert la.zero_points == list(f.zero_points)  # type: ignore[attr-defined]
            assert round(la.sparsity * f.elements) == f.zeros  # type: ignore[attr-defined]
        # Counting q == 0 instead would give another answer: the zero point matters here.
        assert sum(f.zeros for f in ref) != sum(f.raw_zeros for f in ref)

    def test_vela_compiled_reported(self, shared_models: Path) -> None:
        report = audit(_model(shared_models, "person_detect_vela"))
        assert report.model.vela_compiled
        assert report.model.operator_counts == {"CUSTOM:ethos-u": 1}
        assert report.layers == []  # the packed weights are opaque, not audited
        assert [f.rule for f in report.findings] == ["vela-compiled"]

    @pytest.mark.parametrize("name", ["hello_world_float", "mlperftiny_resnet8_float32"])
    def test_float_models_fail_expect_int8(self, shared_models: Path, name: str) -> None:
        path = _model(shared_models, name)
        plain = audit(path)
        assert not plain.failed and any(f.rule == "float-operator" for f in plain.findings)
        strict = audit(path, Expectations(int8=True))
        assert strict.failed
        assert {f.rule for f in strict.findings if f.severity.value == "error"} >= {"float-operator", "expect-int8"}

    def test_int16x8_model(self, shared_models: Path) -> None:
        path = _model(shared_models, "ds_cnn_s_quantized_int16")
        report = audit(path, Expectations(int8=True))
        assert "int16" in report.model.activation_dtypes
        assert any(f.rule == "int16-activations" for f in report.findings)
        assert report.layers and all(la.dtype == "int8" for la in report.layers)
        assert not report.failed  # int8 weights, integer compute: --expect-int8 holds
        assert len(report.layers) == len(reference_filters(path))

    def test_per_tensor_and_mixed(self, shared_models: Path) -> None:
        hw = audit(_model(shared_models, "hello_world_int8"))
        assert {la.quantization for la in hw.layers} == {"per-tensor"}
        ds = audit(_model(shared_models, "ds_cnn_l_quantized"))
        assert {la.quantization for la in ds.layers} == {"per-channel", "per-tensor"}

    def test_summary_totals(self, shared_models: Path) -> None:
        path = _model(shared_models, "mlperftiny_resnet8_int8")
        ref = reference_filters(path)
        s = audit(path).summary
        assert s.weight_elements == sum(f.elements for f in ref)
        assert s.sparsity == pytest.approx(sum(f.zeros for f in ref) / sum(f.elements for f in ref))
        assert s.layers == len(ref)


def test_deflate_size_is_zip_deflated() -> None:
    """ZIP_DEFLATED size = raw DEFLATE stream + local header, central directory and end record."""
    data = EXAMPLE.read_bytes()
    name = "example_int8.tflite"
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    stream = comp.compress(data) + comp.flush()
    assert deflate_size(data, name) == len(stream) + (30 + len(name)) + (46 + len(name)) + 22


class TestExampleAudit:
    def test_findings_and_expectations(self) -> None:
        report = audit(EXAMPLE)
        assert [la.op for la in report.layers] == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "CONV_2D",
                                                   "FULLY_CONNECTED"]
        assert all(la.sparsity == 0.5 for la in report.layers)
        split = [f.op_index for f in report.findings if f.rule == "clusters-split-by-quantization"]
        assert split and set(split) <= {0, 2, 3, 5}
        assert not audit(EXAMPLE, Expectations(sparsity=0.5, clusters=16, per_channel=True, int8=True)).failed
        assert audit(EXAMPLE, Expectations(clusters=16)).failed
        assert audit(EXAMPLE, Expectations(sparsity=0.6)).failed

    def test_macs(self) -> None:
        layers = audit(EXAMPLE).layers
        # conv1: 16x16 outputs x 16 ch x 27; dw: 16x16x16 x 9; conv3: 16x16x32 x 16; conv4: 8x8x32 x 288; fc: 10x32
        assert [la.macs for la in layers] == [16 * 16 * 16 * 27, 16 * 16 * 16 * 9, 16 * 16 * 32 * 16,
                                              8 * 8 * 32 * 288, 320]

    def test_json_is_deterministic(self) -> None:
        assert dumps(audit(EXAMPLE)) == dumps(audit(EXAMPLE))

    def test_no_weights_with_expectations(self) -> None:
        from modelgen import ModelBuilder

        mb = ModelBuilder()
        sg = mb.subgraph()
        x = sg.tensor("x", (1, 4), "int8")
        y = sg.tensor("y", (1, 4), "int8")
        sg.op("RELU", [x], [y])
        sg.io([x], [y])
        data = mb.build()
        report = audit_model(read_model(data), data, "m.tflite", Expectations(sparsity=0.5))
        assert report.failed and [f.rule for f in report.findings] == ["no-weights"]

    @pytest.mark.parametrize("kwargs", [{"sparsity": 2.0}, {"sparsity": -0.1}, {"clusters": 0}])
    def test_bad_expectations(self, kwargs: dict[str, float]) -> None:
        with pytest.raises(UsageError):
            Expectations(**kwargs)  # type: ignore[arg-type]


# ---- the JSON contract (schema hwopt.audit/1) ----------------------------------------------

NUM = (int, float)
OPT_INT = (int, type(None))
CONTRACT_TOP = {"schema": str, "model": dict, "layers": list, "summary": dict, "findings": list}
CONTRACT_MODEL = {
    "path": str, "bytes": int, "deflate_bytes": int, "deflate": dict, "subgraphs": int, "operators": int, "vela_compiled": bool,
    "description": str, "operator_counts": dict, "float_operators": list, "activation_dtypes": list,
}
CONTRACT_LAYER = {
    "subgraph": int, "op_index": int, "op": str, "weight_tensor": str, "shape": list, "dtype": str,
    "quantization": str, "sparsity": NUM, "zero_channels": int, "unique_values": int,
    "max_unique_per_channel": int, "macs": int, "elements": int, "channels": int, "zero_points": list,
    "sparse_2_4": (bool, type(None)), "groups_2_4_ok": (int, float, type(None)), "palette": OPT_INT,
    "entropy_bits_per_weight": NUM,
}
CONTRACT_SUMMARY = {
    "weight_elements": int, "weight_bytes": int, "sparsity": NUM, "max_unique_per_channel": int,
    "max_unique_per_tensor": int, "layers": int, "macs": int, "zero_channels": int,
}
CONTRACT_DEFLATE = {"bytes": int, "method": str, "max_error": NUM}
CONTRACT_FINDING = {"severity": str, "rule": str, "message": str, "subgraph": OPT_INT, "op_index": OPT_INT}


def _check(obj: dict[str, Any], contract: Mapping[str, Any], where: str) -> None:
    assert list(obj) == list(contract), f"{where}: keys {list(obj)}"
    for key, kind in contract.items():
        value = obj[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int subclass in Python; the contract keeps them apart.
        ok = isinstance(value, kinds) and (isinstance(value, bool) == (bool in kinds) or value is None)
        assert ok, f"{where}.{key} = {value!r} is not {kind}"


@pytest.mark.parametrize("path", shared_model_paths(), ids=model_id)
def test_json_contract(path: Path) -> None:
    doc = json.loads(dumps(audit(path)))
    _check(doc, CONTRACT_TOP, "report")
    assert doc["schema"] == SCHEMA == "hwopt.audit/1"
    _check(doc["model"], CONTRACT_MODEL, "model")
    _check(doc["model"]["deflate"], CONTRACT_DEFLATE, "model.deflate")
    assert doc["model"]["deflate"]["bytes"] == doc["model"]["deflate_bytes"]
    assert doc["model"]["deflate"]["method"] in ("exact", "sampled") and 0.0 <= doc["model"]["deflate"]["max_error"] < 0.05
    assert doc["model"]["bytes"] == path.stat().st_size
    assert all(isinstance(k, str) and type(v) is int for k, v in doc["model"]["operator_counts"].items())
    assert all(isinstance(s, str) for s in doc["model"]["float_operators"] + doc["model"]["activation_dtypes"])
    for la in doc["layers"]:
        _check(la, CONTRACT_LAYER, "layer")
        assert all(type(d) is int for d in la["shape"]) and all(type(z) is int for z in la["zero_points"])
        assert 0.0 <= la["sparsity"] <= 1.0 and la["quantization"] in ("per-channel", "per-tensor", "none")
        assert la["palette"] in (None, 4, 16, 32)
    _check(doc["summary"], CONTRACT_SUMMARY, "summary")
    for f in doc["findings"]:
        _check(f, CONTRACT_FINDING, "finding")
        assert f["severity"] in ("error", "warning", "info")
