"""`hwopt encode`: JSON contract, emitted streams, error paths, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.modelgen import (
    BuiltinOptions,
    FullyConnectedOptionsT,
    ModelBuilder,
    conv_options,
    int8_conv_model,
    quantization,
)

TARGETS = ("ethos-u55-128", "ethos-u65-512", "ethos-u85-256", "ethos-n78-4tops-4ple")
LAYER_KEYS = {"subgraph": int, "op_index": int, "op": str, "elements": int, "raw_bytes": int, "encoded_bytes": int,
              "bits_per_weight": float, "entropy_bits_per_weight": float, "roundtrip_ok": bool}


def _mixed_model(float_fc: bool = True, float_conv: bool = False) -> bytes:
    """CONV_2D (int8 or float weights) + FULLY_CONNECTED (float or int8 weights)."""
    rng = np.random.default_rng(0)
    mb = ModelBuilder()
    sg = mb.subgraph()
    conv_t = "float32" if float_conv else "int8"
    x = sg.tensor("in", (1, 4, 4, 4), conv_t, quant=None if float_conv else quantization(0.05, 0))
    wq = rng.integers(-127, 128, (8, 3, 3, 4)).astype(np.float32 if float_conv else np.int8)
    w = sg.tensor("conv/w", wq.shape, conv_t, data=wq, quant=None if float_conv else quantization(np.full(8, 0.01, np.float32)))
    y = sg.tensor("conv/out", (1, 4, 4, 8), conv_t, quant=None if float_conv else quantization(0.1, 0))
    sg.op("CONV_2D", [x, w, -1], [y], options=conv_options(), options_type=BuiltinOptions.Conv2DOptions)
    fc_t = "float32" if float_fc else "int8"
    fw = rng.normal(0, 1, (4, 128)).astype(np.float32) if float_fc else rng.integers(-127, 128, (4, 128)).astype(np.int8)
    f = sg.tensor("fc/w", (4, 128), fc_t, data=fw, quant=None if float_fc else quantization(0.01))
    out = sg.tensor("fc/out", (1, 4), fc_t, quant=None if float_fc else quantization(0.5))
    sg.op("FULLY_CONNECTED", [y, f, -1], [out], options=FullyConnectedOptionsT(),
          options_type=BuiltinOptions.FullyConnectedOptions)
    sg.io([x], [out])
    return mb.build()


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    p = tmp_path / "net.tflite"
    p.write_bytes(int8_conv_model(seed=4, channels=24, in_channels=12))
    return p


@pytest.mark.parametrize("target", TARGETS)
def test_json_contract(run_cli, model_file: Path, target: str) -> None:
    r = run_cli("encode", model_file, "--target", target, "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["schema"] == "hwopt.encode/1" and doc["target"] == target
    assert len(doc["layers"]) == 2
    for layer in doc["layers"]:
        for key, kind in LAYER_KEYS.items():
            assert isinstance(layer[key], kind), key
        assert layer["roundtrip_ok"] is True
        assert layer["bits_per_weight"] == pytest.approx(8 * layer["encoded_bytes"] / layer["elements"], abs=1e-5)
    conv = doc["layers"][0]
    assert conv["elements"] == 24 * 3 * 3 * 12 and conv["raw_bytes"] == conv["elements"]
    s = doc["summary"]
    assert s["encoded_bytes"] == sum(la["encoded_bytes"] for la in doc["layers"])
    assert s["raw_bytes"] == sum(la["raw_bytes"] for la in doc["layers"])
    assert s["bits_per_weight"] == pytest.approx(8 * s["encoded_bytes"] / sum(la["elements"] for la in doc["layers"]),
                                                 abs=1e-5)
    if target.startswith("ethos-u85"):
        assert {la["format"] for la in doc["layers"]} <= {"Default", "Fast"}


def test_entropy_and_structure_fields(run_cli, tmp_path: Path) -> None:
    # Four equally frequent values: entropy exactly 2 bits, 4 distinct, no zeros.
    w = np.tile(np.array([-40, -10, 10, 40], dtype=np.int8), 8 * 9 * 8 // 4).reshape(8, 3, 3, 8)
    p = tmp_path / "four.tflite"
    p.write_bytes(int8_conv_model(w, fc=False))
    doc = json.loads(run_cli("encode", p, "--target", "ethos-u55-128", "--json").out)
    la = doc["layers"][0]
    assert la["entropy_bits_per_weight"] == pytest.approx(2.0)
    assert la["distinct_values"] == 4 and la["sparsity"] == 0.0
    assert la["entropy_ratio"] == pytest.approx(la["bits_per_weight"] / 2.0, abs=1e-5)


def test_emit_writes_streams_and_index(run_cli, model_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "streams"
    r = run_cli("encode", model_file, "--target", "ethos-u65-512", "--emit", out, "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    index = json.loads((out / "index.json").read_text())
    assert [e["op_index"] for e in index["layers"]] == [la["op_index"] for la in doc["layers"]]
    from ethosu import mlw_codec

    for entry in index["layers"]:
        data = (out / entry["file"]).read_bytes()
        assert len(data) == entry["bytes"] == sum(s["length"] for s in entry["streams"])
        assert len(entry["streams"]) == 2  # u65-512: one stream per core
        for s in entry["streams"]:
            decoded = mlw_codec.decode(bytearray(data[s["offset"]:s["offset"] + s["length"]]))
            assert len(decoded) == s["weights"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging leftovers


def test_json_is_deterministic(run_cli, model_file: Path) -> None:
    a = run_cli("encode", model_file, "--target", "ethos-u85-256", "--json").out
    b = run_cli("encode", model_file, "--target", "ethos-u85-256", "--json").out
    assert a == b


def test_human_output(run_cli, model_file: Path) -> None:
    r = run_cli("encode", model_file, "--target", "ethos-u55-128")
    assert r.code == 0 and "bits/weight" in r.out and "CONV_2D" in r.out


def test_mixed_model_lists_float_layer(run_cli, tmp_path: Path) -> None:
    p = tmp_path / "mixed.tflite"
    p.write_bytes(_mixed_model(float_fc=True))
    r = run_cli("encode", p, "--target", "ethos-u55-128", "--json")
    assert r.code == 0, r.err
    layers = json.loads(r.out)["layers"]
    assert [la["encodable"] for la in layers] == [True, False]
    assert "float32" in layers[1]["reason"] and layers[1]["encoded_bytes"] == 0
    assert json.loads(r.out)["summary"]["encoded_bytes"] == layers[0]["encoded_bytes"]


def test_float_model_is_rejected(run_cli, tmp_path: Path) -> None:
    p = tmp_path / "float.tflite"
    p.write_bytes(_mixed_model(float_fc=True, float_conv=True))
    r = run_cli("encode", p, "--target", "ethos-u55-128")
    assert r.code == 2 and "float" in r.err and "Traceback" not in r.err


def test_unknown_target(run_cli, model_file: Path) -> None:
    r = run_cli("encode", model_file, "--target", "ethos-u99-1")
    assert r.code == 2 and r.err.startswith("hwopt: error:")


def test_not_a_model(run_cli, tmp_path: Path) -> None:
    p = tmp_path / "junk.tflite"
    p.write_bytes(b"not a flatbuffer at all")
    r = run_cli("encode", p, "--target", "ethos-u55-128")
    assert r.code == 2 and "Traceback" not in r.err


def test_vela_blocks_refused_for_n78(run_cli, model_file: Path) -> None:
    r = run_cli("encode", model_file, "--target", "ethos-n78-4tops-4ple", "--blocks", "vela")
    assert r.code == 2 and "Ethos-U" in r.err


def test_emit_into_input_refused(run_cli, model_file: Path) -> None:
    r = run_cli("encode", model_file, "--target", "ethos-u55-128", "--emit", model_file)
    assert r.code == 2


def test_vela_compiled_model_rejected(run_cli, shared_models: Path) -> None:
    r = run_cli("encode", shared_models / "person_detect_vela.tflite", "--target", "ethos-u55-128")
    assert r.code == 2 and "Vela" in r.err


def test_vela_blocks_mode_reports_vela_total(run_cli, model_file: Path) -> None:
    r = run_cli("encode", model_file, "--target", "ethos-u55-128", "--blocks", "vela", "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["block_source"] == "vela"
    assert doc["summary"]["vela_encoded_bytes"] > 0
    assert all(la["block_source"] == "vela" for la in doc["layers"])
