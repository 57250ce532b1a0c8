"""The model generator: deterministic, spans the NPU operator space, and its models are accepted by
LiteRT (allocate + invoke) and by Vela (every operator on the NPU); the labelled-corpus cache."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from hwopt.format.tflite_io import read_model
from hwopt.ir import DType
from hwopt.targets import resolve_target
from hwopt.testing import corpus as corpus_mod
from hwopt.testing.generator import LAYER_OPS, NETWORKS, generate, layer_model, network_model

SEEDS = range(400)


def _ops_and_facts() -> tuple[Counter[str], set[str], dict[str, int]]:
    ops: Counter[str] = Counter()
    dtypes: set[str] = set()
    facts = {"sparse": 0, "clustered": 0, "per_tensor": 0, "kernel>=7": 0, "stride3": 0, "dilated": 0,
             "valid": 0, "odd": 0, "even": 0, "deep": 0, "dw_mult": 0, "broadcast": 0}
    for s in SEEDS:
        m = read_model(layer_model(s).data)
        sg = m.subgraphs[0]
        for op in sg.operators:
            ops[op.op] += 1
            out = sg.tensor(op.outputs[0])
            assert out is not None
            dtypes.add(out.dtype.label)
            h = out.shape[1] if len(out.shape) == 4 else 1
            facts["odd"] += h % 2 == 1 and h > 1
            facts["even"] += h % 2 == 0
            facts["deep"] += out.shape[-1] >= 512
            o = op.options
            if op.op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                wt = sg.tensor(op.inputs[1])
                assert wt is not None and wt.data is not None and wt.quantization is not None
                vals = np.asarray(wt.data).view(np.int8)
                facts["sparse"] += float((vals == 0).mean()) > 0.3
                facts["clustered"] += np.unique(vals).size <= 32 and vals.size > 256
                facts["per_tensor"] += not wt.quantization.per_channel
                facts["kernel>=7"] += max(wt.shape[1], wt.shape[2]) >= 7
                facts["stride3"] += o.strideH == 3
                facts["dilated"] += o.dilationHFactor > 1
                facts["valid"] += o.padding == 1
                facts["dw_mult"] += op.op == "DEPTHWISE_CONV_2D" and o.depthMultiplier > 1
            if op.op in ("ADD", "SUB", "MUL"):
                shapes = {tuple(t.shape) for i in op.inputs if (t := sg.tensor(i)) is not None}
                facts["broadcast"] += len(shapes) > 1
    return ops, dtypes, facts


def test_generator_is_deterministic() -> None:
    for s in (0, 7, 33):
        assert generate(s).data == generate(s).data
        assert network_model(s).data == network_model(s).data
    assert generate(1).data != generate(2).data


def test_generator_spans_the_npu_operator_space() -> None:
    ops, dtypes, facts = _ops_and_facts()
    assert set(LAYER_OPS) <= set(ops), set(LAYER_OPS) - set(ops)
    assert {"int8", "int16"} <= dtypes
    for name, count in facts.items():
        assert count > 0, f"no generated layer shows {name}"
    families = {network_model(s).kind for s in range(40)}
    assert families == set(NETWORKS)


def _cases() -> list[int]:
    """Seeds whose models cover every operator type and every network family at least once."""
    seen: set[str] = set()
    picked = []
    for s in SEEDS:
        op = layer_model(s).name.split("-", 2)[2]
        if op not in seen:
            seen.add(op)
            picked.append(s)
    return picked


@pytest.mark.parametrize("seed", _cases())
def test_layer_models_run_in_litert_and_compile_on_the_npu(seed: int) -> None:
    _accepted(layer_model(seed).data)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 5, 8])
def test_network_models_run_in_litert_and_compile_on_the_npu(seed: int) -> None:
    _accepted(network_model(seed).data)


def _accepted(data: bytes) -> None:
    from ai_edge_litert.interpreter import Interpreter

    from hwopt.targets.ethos_u.vela_engine import compile_model

    it = Interpreter(model_content=data)
    it.allocate_tensors()
    for d in it.get_input_details():
        it.set_tensor(d["index"], np.random.default_rng(0).integers(-100, 100, size=d["shape"]).astype(d["dtype"]))
    it.invoke()
    out = it.get_output_details()[0]
    assert it.get_tensor(out["index"]).shape == tuple(out["shape"])
    model = read_model(data)
    assert model.subgraphs[0].tensor(model.subgraphs[0].inputs[0]).dtype in (DType.INT8, DType.INT16)  # type: ignore[union-attr]
    for target in ("ethos-u55-128", "ethos-u85-256"):
        res = compile_model(data, resolve_target(target))
        assert all(r.placement == "npu" for r in res.ops), [(r.op, r.placement) for r in res.ops]
        assert res.perf.npu_cycles > 0


def test_corpus_labels_equal_vela_and_cache_invalidates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hwopt.targets.ethos_u.vela_engine import compile_model

    m = layer_model(3)
    t = resolve_target("ethos-u55-128")
    labels, hit = corpus_mod.label(m.name, m.data, t, tmp_path)
    assert not hit and labels.error is None
    res = compile_model(m.data, t)
    assert labels.cycles == res.perf.cycles and labels.npu_cycles == res.perf.npu_cycles
    assert [la.cycles for la in labels.layers] == [r.cycles for r in res.ops]
    again, hit = corpus_mod.label(m.name, m.data, t, tmp_path)
    assert hit and again == labels
    # a different descriptor (here: another clock) is a different key: compiled again
    faster = dataclasses.replace(t, system=dataclasses.replace(t.system, core_clock_hz=t.clock_hz * 2))  # type: ignore[arg-type]
    assert corpus_mod.label(m.name, m.data, faster, tmp_path)[1] is False
    # the same descriptor read from another place (another checkout) is the same key: a hit
    moved = dataclasses.replace(t, source=tmp_path / "elsewhere" / "ethos-u55-128.toml")
    assert corpus_mod.label(m.name, m.data, moved, tmp_path) == (labels, True)
    # so is another Vela version
    monkeypatch.setattr(corpus_mod, "vela_version", lambda: "0.0-test")
    relabelled, hit = corpus_mod.label(m.name, m.data, t, tmp_path)
    assert not hit and relabelled.vela_version == "0.0-test"
    assert len(list(tmp_path.rglob("*.json"))) == 3


def test_split_is_fixed_by_seed() -> None:
    names = [f"layer-{i:05d}" for i in range(2000)]
    side = [corpus_mod.is_validation(n, 0) for n in names]
    assert side == [corpus_mod.is_validation(n, 0) for n in names]
    assert 0.2 < sum(side) / len(side) < 0.3
    assert side != [corpus_mod.is_validation(n, 1) for n in names]
