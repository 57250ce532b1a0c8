"""The U85 block-configuration search against Vela itself: for every NPU operation Vela runs, the OFM
block, IFM block, micro-block and traversal it chose (read from its optimisation database) must be
the configuration `find_u85_block` picks for the same operation."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from hwopt.errors import HwoptError
from hwopt.format.tflite_io import read_model
from hwopt.targets import resolve_target
from hwopt.targets.ethos_u.placement import ethos_u_geometry
from hwopt.targets.ethos_u.u85 import u85_block, u85_query
from hwopt.targets.ethos_u.u85_blocks import U85Op, U85Query, find_u85_block
from hwopt.targets.ethos_u.vela_blocks import compile_with_db, vela_op_blocks, vela_query
from hwopt.targets.ethos_u.weight_layout import Traversal
from hwopt.testing.generator import layer_model, network_model

pytest.importorskip("ethosu.regor", reason="Vela (ethos-u-vela) is not installed")

CONFIGS = ("ethos-u85-128", "ethos-u85-256", "ethos-u85-512", "ethos-u85-1024", "ethos-u85-2048")
MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"


def mismatches(data: bytes, config: str) -> tuple[int, list[str]]:
    """(operations compared, descriptions of those where hwopt's configuration differs from Vela's)."""
    target = resolve_target(config)
    rows = [r for r in vela_op_blocks(compile_with_db(data, target)) if not r.cascaded]
    bad = []
    for r in rows:
        b = find_u85_block(vela_query(r), target.npu.macs)
        got = (b.ofm, b.ifm, b.ublock, b.traversal.value)
        want = (r.ofm_block, r.ifm_block, r.ublock, r.traversal)
        if got != want:
            bad.append(f"{config} {r.operator} {r.ifm}->{r.ofm}: hwopt {got}, Vela {want}")
    return len(rows), bad


@pytest.mark.parametrize("config", CONFIGS)
def test_generated_networks_match_vela(config: str) -> None:
    total, bad = 0, []
    for seed in (1, 3):
        n, b = mismatches(network_model(seed).data, config)
        total, bad = total + n, bad + b
    assert total >= 20
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("config", CONFIGS)
def test_generated_layers_match_vela(config: str) -> None:
    total, bad = 0, []
    for seed in range(8):
        n, b = mismatches(layer_model(seed).data, config)
        total, bad = total + n, bad + b
    assert total >= 6
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize(("model", "config"), [("ds_cnn_s_quantized_int16.tflite", "ethos-u85-256"),
                                               ("ds_cnn_l_quantized.tflite", "ethos-u85-512"),
                                               ("mlperftiny_resnet8_int8.tflite", "ethos-u85-2048"),
                                               ("ssd_mobilenet_v3_int8.tflite", "ethos-u85-1024")])
def test_shared_models_match_vela(model: str, config: str) -> None:
    path = MODELS / model
    if not path.exists():
        pytest.skip(f"shared model {model} not present")
    n, bad = mismatches(path.read_bytes(), config)
    assert n >= 5
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize(("seed", "config"), [(2, "ethos-u85-128"), (5, "ethos-u85-512"), (7, "ethos-u85-2048")])
def test_estimator_blocks_match_vela(seed: int, config: str) -> None:
    """The estimator's own view of each layer (its geometry, lowered as Vela lowers it) gets Vela's block,
    for every layer Vela ran as one operation with the weight format hwopt assumes."""
    data, target = network_model(seed).data, resolve_target(config)
    rows = [r for r in vela_op_blocks(compile_with_db(data, target)) if not r.cascaded]
    per_op = Counter(r.op_index for r in rows)
    checked, bad = 0, []
    for g in ethos_u_geometry(read_model(data), target.family):
        q = u85_query(g)
        match = [r for r in rows if r.op_index == g.op_index]
        if g.subgraph or q is None or per_op[g.op_index] != 1 or not match:
            continue
        r = match[0]
        if ("Sparse2_4" in r.weight_format) != q.sparse:  # Vela chose the format by its cycle estimate
            continue
        blk = u85_block(g, target)
        checked += 1
        if (blk.ofm, blk.ifm, blk.ublock, blk.traversal.value) != (r.ofm_block, r.ifm_block, r.ublock, r.traversal):
            bad.append(f"{g.op} {q}: hwopt {blk}, Vela {r}")
    assert checked >= 8
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize(("seed", "config"), [(65, "ethos-u85-256"), (97, "ethos-u85-2048")])
def test_depth_multiplier_parts_match_vela(seed: int, config: str) -> None:
    """A depthwise convolution with a channel multiplier runs as one depthwise part per multiplier;
    the estimator's block is each part's."""
    data, target = layer_model(seed).data, resolve_target(config)
    rows = vela_op_blocks(compile_with_db(data, target))
    layers = [g for g in ethos_u_geometry(read_model(data), target.family)
              if g.op == "DEPTHWISE_CONV_2D" and g.ofm[2] != g.ifm[2]]
    assert layers
    for g in layers:
        parts = [r for r in rows if r.op_index == g.op_index and r.operator == "DepthwiseConv2D"]
        assert len(parts) == g.ofm[2] // g.ifm[2]
        blk = u85_block(g, target)
        want = {(r.ofm_block, r.ifm_block, r.ublock, r.traversal) for r in parts}
        assert want == {(blk.ofm, blk.ifm, blk.ublock, blk.traversal.value)}


@pytest.mark.parametrize(("seed", "config"), [(21, "ethos-u85-256"), (105, "ethos-u85-1024"), (126, "ethos-u85-128")])
def test_transpose_conv_matches_vela(seed: int, config: str) -> None:
    """A strided transposed convolution runs as one convolution per output phase; the estimator's block
    is that of the phase Vela runs uncascaded (the full OFM, the most kernel taps)."""
    data, target = layer_model(seed).data, resolve_target(config)
    rows = vela_op_blocks(compile_with_db(data, target))
    layers = [g for g in ethos_u_geometry(read_model(data), target.family) if g.op == "TRANSPOSE_CONV"]
    assert layers and max(layers[0].stride) > 1
    for g in layers:
        whole = [r for r in rows if r.op_index == g.op_index and r.operator == "Conv2D" and not r.cascaded]
        blk = u85_block(g, target)
        assert (blk.ofm, blk.ifm, blk.ublock, blk.traversal.value) == (
            whole[0].ofm_block, whole[0].ifm_block, whole[0].ublock, whole[0].traversal)


def test_examples() -> None:
    """Configurations Vela 5.2 picks (read from its optimisation database) for three typical layers."""
    stem = find_u85_block(U85Query(U85Op.CONV, (96, 96, 3), (48, 48, 8), (3, 3), (2, 2)), 1024)
    assert (stem.ofm, stem.ifm, stem.ublock, stem.traversal) == ((6, 16, 16), (14, 36, 16), (2, 4, 16),
                                                                 Traversal.PART_KERNEL)
    dw = find_u85_block(U85Query(U85Op.DEPTHWISE, (48, 48, 8), (48, 48, 8), (3, 3)), 1024)
    assert (dw.ofm, dw.ifm, dw.traversal) == ((30, 24, 16), (32, 28, 16), Traversal.DEPTHWISE)
    fc = find_u85_block(U85Query(U85Op.VECTOR_PRODUCT, (1, 1, 8), (1, 1, 2)), 256)
    assert (fc.ofm, fc.ifm, fc.ublock, fc.traversal) == ((1, 4, 16), (1, 4, 16), (1, 4, 8), Traversal.PART_KERNEL)


def test_errors() -> None:
    with pytest.raises(HwoptError, match="MACs"):
        find_u85_block(U85Query(U85Op.CONV, (8, 8, 8), (8, 8, 8)), 384)
    with pytest.raises(HwoptError, match="empty"):
        U85Query(U85Op.CONV, (0, 8, 8), (8, 8, 8))
    with pytest.raises(HwoptError, match="micro-block"):  # no U85-1024 micro-block pools 32-bit data
        find_u85_block(U85Query(U85Op.POOL, (8, 8, 8), (8, 8, 8), ifm_bits=32), 1024)
