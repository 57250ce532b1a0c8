"""Ethos-U weight streams against Vela 5.2's own: byte identity, FWD and 2:4-sparse decode, the tool.

The golden streams are the ones Vela writes into its compiled models (located through the
register command stream); the encoder's parameter search is also checked against a plain
symbol-by-symbol transcription of the search.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from hwopt.targets.ethos_u import fwd, mlw, mlw_search

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "check_reference.py"
FAST_MODELS = ("mlperftiny_resnet8_int8.tflite", "micro_speech_quantized.tflite", "hello_world_int8.tflite",
               "derived/ic_resnet8_pruned_2of4_int8.tflite", "derived/ic_resnet8_clustered8_perchannel_int8.tflite",
               "derived/ic_resnet8_pruned50_int8.tflite")


def _tool() -> ModuleType:
    if str(ROOT / "tools") not in sys.path:
        sys.path.insert(0, str(ROOT / "tools"))
    return importlib.import_module("reference_ethos_u")


def _scalar_search(values: np.ndarray, zero_runs: bool, unc_bits: int) -> list[tuple[int, int]]:
    """The greedy GRC search written symbol by symbol, as the stream format's encoder describes it."""
    params = mlw_search.Z_PARAMS if zero_runs else mlw_search.W_PARAMS
    n_cfg = len(params)
    bit_count = [0] * n_cfg
    reset = [0] * n_cfg
    coded = [False] * n_cfg
    active, active_bits = -1, 0
    result: list[tuple[int, int]] = []
    for i, v in enumerate(values.tolist()):
        best_bits, best = 1 << 62, 0
        for j, prm in enumerate(params):
            div, trunc = prm & 15, prm >> 4
            q = v >> div
            bits = min(q + 1, 2) + div if trunc else q + 1 + div
            ok = zero_runs or not ((trunc and q > 2) or q > 31)
            if trunc == 2:
                bits, ok = (unc_bits if unc_bits > 0 else 100), True
            if ok:
                if not coded[j]:
                    bit_count[j] = active_bits
                bit_count[j] += bits
                if bit_count[j] < best_bits:
                    best_bits, best = bit_count[j], j
            else:
                reset[j] = i + 1
                bit_count[j] += 40
            coded[j] = ok
        if active == -1 or not coded[active] or (best != active and best_bits + 40 < active_bits):
            if active != -1 and not (bit_count[best] < bit_count[active] and reset[best] <= reset[active]):
                result.append((active, i))
            active = best
        active_bits = bit_count[active]
    if not result or result[-1][0] != active:
        result.append((active, len(values)))
    else:
        result[-1] = (active, len(values))
    return result


@pytest.mark.parametrize("seed", range(6))
def test_vectorised_search_equals_symbol_by_symbol(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 5000))
    kind = seed % 3
    if kind == 0:  # weight indices: mostly small, bursts of large ones (forces uncodable symbols)
        v = np.abs(rng.normal(0, 6, n)).astype(np.int64)
        burst = rng.random(n) < 0.05
        v[burst] = rng.integers(40, 511, int(burst.sum()))
        for unc in (0, 3, 9):
            got = [(s.cfg, s.end) for s in mlw_search.search(v, False, unc)]
            assert got == _scalar_search(v, False, unc)
    elif kind == 1:  # zero runs: geometric lengths with regime changes
        v = np.concatenate([rng.geometric(p, n // 3 + 1) - 1 for p in (0.9, 0.2, 0.6)])
        assert [(s.cfg, s.end) for s in mlw_search.search(v, True, 0)] == _scalar_search(v, True, 0)
    else:  # alternating regimes of palette-like and direct-like indices
        v = np.concatenate([rng.integers(0, 4, n), rng.integers(0, 300, n), rng.integers(0, 32, n)])
        got = [(s.cfg, s.end) for s in mlw_search.search(v, False, 5)]
        assert got == _scalar_search(v, False, 5)


def test_palette_rules_by_hand() -> None:
    # 3 x 7, 2 x -7, 1 x 2: no zeros. Palette by count, ties by larger folded value: 14 (7), 15 (-7), 4 (2).
    pal = mlw.make_palette(np.array([7, 7, 7, -7, -7, 2]))
    assert pal.entries == (14, 15, 4) and not pal.zero_runs and pal.only_palette
    assert pal.bits == 4 and pal.uncompressed_bits() == 2  # max entry 15 -> 4 bits; 3 entries -> 2-bit indices
    assert pal.direct_offset == 4  # the smallest folded value in use
    # Zeros 6x more frequent than any other value, all in runs: zero-run mode, zero left out of the palette.
    w = np.array([0] * 12 + [5, 0, 0, 0, 0, 0, 0, 3])
    pal = mlw.make_palette(w)
    assert pal.zero_runs and 0 not in pal.entries
    # One value only: the palette is padded to two entries.
    assert mlw.make_palette(np.array([9, 9, 9])).entries == (18, 0)


def test_stream_framing_and_round_trip() -> None:
    from hwopt.targets.ethos_u.weights import decode_standard

    rng = np.random.default_rng(1)
    for w in (np.zeros(40, dtype=np.int64), rng.integers(-255, 256, 3000),
              np.where(rng.random(140_000) < 0.6, 0, rng.integers(-20, 21, 140_000))):
        data = mlw.encode(w)
        assert len(data) % 16 == 0 and data[-1] == 0xFF
        assert decode_standard(data).tolist() == w.tolist()
    with pytest.raises(ValueError):
        mlw.encode(np.array([256]))


@pytest.mark.parametrize("target", ["ethos-u55-128", "ethos-u65-256", "ethos-u85-256"])
def test_streams_byte_identical_to_vela(shared_models: Path, target: str) -> None:
    result = _tool().run([str(shared_models / m) for m in FAST_MODELS], target)
    assert result.buffers >= 40  # every weight layer Vela runs on the NPU
    assert [m.case for m in result.mismatches] == []
    assert result.bit_exact == result.buffers and result.decoded_ok == result.buffers


def _vela_layers(path: Path, target_name: str) -> tuple[dict[int, object], bytes, dict[int, object]]:
    from hwopt.format.tflite_io import read_model
    from hwopt.targets import resolve_target
    from hwopt.targets.ethos_u import vela_streams
    from hwopt.targets.ethos_u.vela_blocks import configs_from_compiled
    from hwopt.targets.ethos_u.vela_config import CompilerOptions
    from hwopt.targets.ethos_u.vela_engine import regor_compile

    target = resolve_target(target_name)
    compiled, _ = regor_compile(path.read_bytes(), target, CompilerOptions(enable_db=True))
    sg = read_model(bytes(compiled.model)).subgraphs[0]
    custom = next(op for op in sg.operators if op.op.startswith("CUSTOM"))
    located = vela_streams.layer_streams(bytes(sg.tensor(custom.inputs[0]).data), compiled.opt_database.tables,
                                         u85=True)
    return dict(located), bytes(sg.tensor(custom.inputs[1]).data), dict(configs_from_compiled(compiled)[0])


def _source_ohwi(path: Path, op_index: int) -> np.ndarray:
    from hwopt.analysis.layers import to_ohwi, weight_layers, zero_corrected
    from hwopt.format.tflite_io import read_model

    model = read_model(path)
    layer = next(la for la in weight_layers(model) if la.op_index == op_index and la.subgraph == 0)
    return to_ohwi(zero_corrected(model, layer), layer.layout)


def test_vela_fast_and_sparse_streams_decode_to_source_weights(shared_models: Path) -> None:
    from hwopt.targets import resolve_target
    from hwopt.targets.ethos_u.weights import arch_of, decode_standard, u85_order

    arch = arch_of(resolve_target("ethos-u85-256"))
    checked = {"fast": 0, "sparse": 0}
    for name in ("derived/ic_resnet8_clustered8_perchannel_int8.tflite", "derived/ic_resnet8_pruned_2of4_int8.tflite"):
        path = shared_models / name
        located, read_only, infos = _vela_layers(path, "ethos-u85-256")
        for op, streams in located.items():
            info = infos[op]
            fmt = info.config.weight_format  # type: ignore[attr-defined]
            w = _source_ohwi(path, op)
            expect = u85_order(w, arch=arch, config=info.config, stride=info.stride,  # type: ignore[attr-defined]
                               dilation=info.dilation, sparse=fmt.sparse)  # type: ignore[attr-defined]
            # The located streams are exactly as long as the database's weight_total_bytes.
            assert sum(len(d) for d in streams.data(read_only)) == info.encoded_bytes  # type: ignore[attr-defined]
            (data,) = streams.data(read_only)  # type: ignore[attr-defined]
            assert streams.fast == fmt.fast and streams.sparse == fmt.sparse  # type: ignore[attr-defined]
            if fmt.fast:
                assert data[13] == 0  # Vela's zero adjust
                got = fwd.decode(data, [expect.size])[0]
                checked["fast"] += 1
            else:
                got = decode_standard(data)
                checked["sparse"] += fmt.sparse
            assert got.tolist() == expect.tolist()
    assert checked["fast"] >= 2 and checked["sparse"] >= 9


def test_check_reference_exit_codes(shared_models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = shared_models / "hello_world_int8.tflite"
    ok = subprocess.run([sys.executable, str(TOOL), "ethos-u", str(model), "--target", "ethos-u55-128", "--json"],
                        capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert '"kind": "ethos-u"' in ok.stdout and '"bit_exact": 3' in ok.stdout
    for bad in ([str(tmp_path / "missing.tflite"), "--target", "ethos-u55-128"],
                [str(model), "--target", "ethos-n78-4tops-4ple"],
                [str(shared_models / "person_detect_vela.tflite"), "--target", "ethos-u55-128"]):
        run = subprocess.run([sys.executable, str(TOOL), "ethos-u", *bad], capture_output=True, text=True, check=False)
        assert run.returncode == 2 and run.stderr.count("\n") == 1 and "error:" in run.stderr
    # Valid streams that are not Vela's (the legacy codec's choices) are reported with where they differ: exit 1.
    from ethosu import mlw_codec

    def legacy(w: np.ndarray) -> bytes:
        return bytes(mlw_codec.encode(np.asarray(w).astype(np.int64).tolist()))

    monkeypatch.setattr(mlw, "encode", legacy)
    tool = _tool()
    args = argparse.Namespace(models=[str(model)], target="ethos-u55-128", json=False)
    assert tool.main(args) == 1
    result = tool.run([str(model)], "ethos-u55-128")
    assert result.bit_exact < result.buffers == 3 and result.mismatches
    assert result.decoded_ok == 3  # the same weights, coded differently
    assert all(m.case.startswith("hello_world_int8:op") and m.variant == "ethos-u55-128" for m in result.mismatches)


def test_operators_vela_rewrites_keep_vela_streams(tmp_path: Path) -> None:
    """A depthwise channel multiplier (Vela runs one depthwise operation per multiplier) and a
    transposed convolution (U55/U65: the kernel rotated by 180 degrees; U85: one convolution per
    output phase) still give Vela's bytes."""
    from hwopt.testing.generator import generate

    paths = []
    for seed, op in ((14, "depthwise_conv_2d"), (74, "depthwise_conv_2d"), (21, "transpose_conv"),
                     (105, "transpose_conv")):
        g = generate(seed)
        assert op in g.name
        paths.append(tmp_path / f"{g.name}.tflite")
        paths[-1].write_bytes(g.data)
    for target in ("ethos-u55-128", "ethos-u65-512", "ethos-u85-256"):
        result = _tool().run([str(p) for p in paths], target)
        assert result.buffers >= 6 and result.bit_exact == result.buffers, result.mismatches


def test_vela_blocks_by_default_search_without_compile_and_fallback(shared_models: Path,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    from hwopt.engines.encode import encode
    from hwopt.errors import CompileError
    from hwopt.targets import resolve_target
    from hwopt.targets.ethos_u import vela_blocks

    model = shared_models / "hello_world_int8.tflite"
    target = resolve_target("ethos-u55-128")
    vela = encode(model, target)
    assert vela.block_source == "vela"
    assert all(la.block_source == "vela" for la in vela.layers if la.encodable)
    report = encode(model, target, block_source="rule")
    assert report.block_source == "rule"
    assert all(la.block_source == "search" for la in report.layers if la.encodable)
    assert [la._data for la in vela.layers] == [la._data for la in report.layers]  # Vela's own streams

    def rejects(*_: object, **__: object) -> object:
        raise CompileError("Vela rejected the model: test")

    monkeypatch.setattr(vela_blocks, "compile_with_db", rejects)
    fallback = encode(model, target)
    assert fallback.block_source == "rule" and fallback.summary.roundtrip_ok
    assert all(la.block_source == "search" for la in fallback.layers if la.encodable)
    assert "block search" in caplog.text


def test_check_reference_on_generated_models() -> None:
    tool = _tool()
    result, skipped = tool.run_generated(6, "ethos-u85-256")
    assert result.buffers >= 4 and result.bit_exact == result.buffers and skipped <= 2
    assert tool.main(argparse.Namespace(models=[], target="ethos-u55-128", json=True, generated=0)) == 2
