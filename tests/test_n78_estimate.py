"""Ethos-N78 analytic estimator and encoder policy on generated models: placement, passes, limits.

Expected figures are worked out by hand from the support library's estimator formulas
(documented in docs/targets.md), never read from hwopt's output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hwopt.engines.encode import encode_model
from hwopt.engines.estimate import estimate
from hwopt.format.tflite_io import read_model
from hwopt.targets import resolve_target
from hwopt.targets.ethos_n.perf import INTERLEAVE_BLOCK, Block, PleOp, block_multiplier, has_kernel
from hwopt.targets.ethos_n.plan import Kind, N78Layer, plan_layer, support
from hwopt.targets.ethos_n.variants import VARIANTS
from hwopt.testing.builder import Act, GraphBuilder, WeightStyle, options

N78 = "ethos-n78-4tops-4ple"
ACT = Act("int8", 0.05, 0)


def _write(tmp_path: Path, b: GraphBuilder) -> Path:
    path = tmp_path / "m.tflite"
    path.write_bytes(b.build())
    return path


def test_depth_to_space_runs_on_the_npu(tmp_path: Path) -> None:
    # Both are in the N78 operator table; they used to be classified with Ethos-U's list (CPU).
    b = GraphBuilder(np.random.default_rng(0))
    x, y, z = b.activation((1, 8, 8, 16), ACT), b.activation((1, 16, 16, 4), ACT), b.activation((1, 8, 8, 16), ACT)
    b.op("DEPTH_TO_SPACE", [x], [y], options("DepthToSpaceOptions", blockSize=2))
    b.op("SPACE_TO_DEPTH", [y], [z], options("SpaceToDepthOptions", blockSize=2))
    b.io([x], [z])
    report = estimate(_write(tmp_path, b), resolve_target(N78), engine="analytic")
    assert [la.placement for la in report.layers] == ["npu", "npu"]
    # SPACE_TO_DEPTH: 16x16x4 input -> 4x4 patches x ceil(4 / 16 PLE lanes) = 16 patches x 13 cycles.
    assert report.layers[1].passes[0].ple_cycles == 16 * 13


def _conv_model(tmp_path: Path, k: int, stride: int, cin: int = 8, cout: int = 16, size: int = 16) -> Path:
    b = GraphBuilder(np.random.default_rng(1))
    x = b.activation((1, size, size, cin), ACT)
    w, _ = b.weights((cout, k, k, cin), 0, 3, WeightStyle())
    bias = b.bias(cout, ACT, np.full(cout, 0.01))
    out = -(-size // stride)
    y = b.activation((1, out, out, cout), ACT)
    b.op("CONV_2D", [x, w, bias], [y], options("Conv2DOptions", padding=0, strideH=stride, strideW=stride))
    b.io([x], [y])
    return _write(tmp_path, b)


def test_strided_conv_has_an_interleave_pass(tmp_path: Path) -> None:
    report = estimate(_conv_model(tmp_path, 3, 2), resolve_target(N78), engine="analytic")
    passes = report.layers[0].passes
    assert [p.ple_operation for p in passes] == ["INTERLEAVE_2X2", "PASSTHROUGH"]
    # Identity depthwise on 16x16x8: 16 * 16 * roundup(8, 16) / (16 IG lanes x 8 MACs) = 32 cycles.
    assert passes[0].mce_cycles == 32
    # The strided conv: 9 * roundup(8, 4) * roundup(8, 2) * roundup(8, 16) * roundup(16, 16) / 2048.
    assert passes[1].mce_cycles == 9 * 8 * 8 * 16 * 16 // 2048
    assert passes[0].input_dram_bytes == 16 * 16 * 8 and passes[1].output_dram_bytes == 8 * 8 * 16


def test_wide_strided_kernel_is_estimate_only(tmp_path: Path) -> None:
    # The library refuses stride 2 with a kernel wider than 7 and only estimates it (zero cost).
    layer = N78Layer(Kind.CONV, (32, 32, 8), (16, 16, 16), (9, 9), (2, 2))
    assert support(layer) == "Unsupported stride for kernel width/height > 7. Stride X and Y must be 1"
    path = _conv_model(tmp_path, 9, 2, size=32)
    report = estimate(path, resolve_target(N78), engine="analytic")
    assert report.layers[0].placement == "cpu"
    enc = encode_model(read_model(path), resolve_target(N78))
    assert not enc.layers[0].encodable and "kernel width/height > 7" in (enc.layers[0].reason or "")


def test_encode_policy_follows_the_library(tmp_path: Path) -> None:
    v = VARIANTS[N78]
    # 3x3 stride 1 on a 16-IFM variant: Winograd; all 16 OFMs in one stripe; the whole IFM depth
    # rounded to the 16 IFM lanes in one iteration.
    plan = plan_layer(N78Layer(Kind.CONV, (16, 16, 8), (16, 16, 16), (3, 3)), v)
    assert (plan.algorithm.value, plan.stripe_depth, plan.iteration_size) == ("Winograd", 16, 16)
    # Fully connected 1100 -> 16: input depth padded to 2048, stripe depth rounded to the 16 OGs.
    fc = plan_layer(N78Layer(Kind.FULLY_CONNECTED, (1, 1, 1100), (1, 1, 16)), v)
    assert (fc.stripe_depth, fc.iteration_size) == (16, 2048)
    enc = encode_model(read_model(_conv_model(tmp_path, 3, 1)), resolve_target(N78))
    assert enc.layers[0].roundtrip_ok and enc.layers[0].traversal == "Winograd"


def test_ple_kernels_and_block_multiplier() -> None:
    # Every PLE operation is its own member (no enum aliases), and the block multiplier is the
    # library's pick among the kernels that exist: 8x8 passthrough has x1, x2 and x4 kernels,
    # an 8x8 2x2 max pool only x4, a 16x16 block only x1.
    assert len({op.value for op in PleOp}) == len(PleOp) == 13
    assert block_multiplier(PleOp.PASSTHROUGH, Block(8, 8), 16) == 2
    assert block_multiplier(PleOp.MAXPOOL_2X2, Block(8, 8), 16) == 4
    assert block_multiplier(PleOp.PASSTHROUGH, Block(16, 16), 64) == 1
    assert not has_kernel(PleOp.INTERLEAVE_2X2, Block(8, 8)) and has_kernel(PleOp.INTERLEAVE_2X2, INTERLEAVE_BLOCK)
    assert not has_kernel(PleOp.MAXPOOL_3X3, Block(16, 16)) and has_kernel(PleOp.AVGPOOL_3X3, Block(16, 16))


def test_interleave_after_an_mce_layer_runs_on_its_ple() -> None:
    # In a cascade the library gives the MCE layer before a strided layer an MCE-only plan and the
    # interleave a PLE-only one: one pass, no identity depthwise. Interleave PLE on 16x16x16 with
    # 16x16 blocks, 16 PLE lanes: 4 x 4 x 1 patches x 13 + 1 block x (10 + 100) = 318 cycles
    # (the library's figure for the same interleave in the single-layer reference).
    from hwopt.targets.ethos_n.network import NetLayer, estimate_network

    v = VARIANTS[N78]
    rng = np.random.default_rng(0)
    pw = N78Layer(Kind.CONV, (16, 16, 16), (16, 16, 16))
    dw = N78Layer(Kind.DEPTHWISE, (16, 16, 16), (8, 8, 16), (3, 3), (2, 2))
    layers = [NetLayer(pw, rng.integers(-127, 128, (1, 1, 16, 16)).astype(np.int8), input_from_npu=False),
              NetLayer(dw, rng.integers(-127, 128, (3, 3, 16, 1)).astype(np.int8), output_to_npu=False)]
    first, second = (e.estimate for e in estimate_network(layers, v))
    assert first is not None and second is not None
    assert first.passes[-1].ple_op is PleOp.INTERLEAVE_2X2 and first.passes[-1].ple_cycles == 318
    assert [p.ple_op for p in second.passes] == [PleOp.PASSTHROUGH]
    assert first.plan is not None and first.plan.block == INTERLEAVE_BLOCK  # the cascade takes the 16x16 block


def _chain(tmp_path: Path, build: str) -> list[tuple[str, list[str], int, int]]:
    """A 16x16x16 conv followed by one operator; per operator: op, PLE kernels, MCE and PLE cycles."""
    b = GraphBuilder(np.random.default_rng(2))
    x = b.activation((1, 16, 16, 16), ACT)
    w, _ = b.weights((16, 1, 1, 16), 0, 3, WeightStyle())
    y = b.activation((1, 16, 16, 16), ACT)
    b.op("CONV_2D", [x, w, b.bias(16, ACT, np.full(16, 0.01))], [y], options("Conv2DOptions", padding=1, strideH=1, strideW=1))
    if build == "leaky":
        z = b.activation((1, 16, 16, 16), ACT)
        b.op("LEAKY_RELU", [y], [z], options("LeakyReluOptions", alpha=0.1))
    elif build in ("add_relu", "add_same"):
        z = b.activation((1, 16, 16, 16), ACT if build == "add_same" else Act("int8", 0.1, 0))
        act = 0 if build == "add_same" else 3
        b.op("ADD", [y, x], [z], options("AddOptions", fusedActivationFunction=act))
    elif build == "maxpool_s1":
        z = b.activation((1, 14, 14, 16), ACT)
        b.op("MAX_POOL_2D", [y], [z], options("Pool2DOptions", padding=1, strideH=1, strideW=1, filterHeight=3,
                                               filterWidth=3))
    else:
        z = b.activation((1, 16, 16, 16), ACT)
        b.op("AVERAGE_POOL_2D", [y], [z], options("Pool2DOptions", padding=0, strideH=1, strideW=1, filterHeight=3,
                                                   filterWidth=3))
    b.io([x], [z])
    report = estimate(_write(tmp_path, b), resolve_target(N78), engine="analytic")
    return [(la.op, [p.ple_operation for p in la.passes], sum(p.mce_cycles for p in la.passes),
             sum(p.ple_cycles for p in la.passes)) for la in report.layers]


def test_fused_ple_kernels_ride_on_the_mce_layer(tmp_path: Path) -> None:
    # A leaky ReLU is one of the library's fused-only PLE kernels: right after the conv (its only
    # reader) it runs on the conv's PLE, with no pass of its own.
    conv, leaky = _chain(tmp_path, "leaky")
    assert conv[1] == ["LEAKY_RELU"] and leaky[1:] == ([], 0, 0)


def test_standalone_ple_kernels_and_relu_after_an_addition(tmp_path: Path) -> None:
    # An addition is a standalone PLE pass: ADDITION when both inputs and the output share one
    # quantization, else ADDITION_RESCALE. Its fused ReLU cannot go into an MCE clamp: the library
    # adds an identity depthwise (MCE cycles 16 * 16 * 16 / (16 IG lanes x 8 MACs) = 32).
    assert _chain(tmp_path, "add_same")[1][1] == ["ADDITION"]
    add = _chain(tmp_path, "add_relu")[1]
    assert add[1] == ["ADDITION_RESCALE", "PASSTHROUGH"] and add[2] == 32
    # A 3x3 stride-1 average pool is the standalone AVGPOOL_3X3 kernel: no MCE work.
    avg = _chain(tmp_path, "avg")[1]
    assert avg[1:3] == (["AVGPOOL_3X3"], 0)
    # A stride-1 max pool is two standalone 1D max pools (X to 16x14, then Y to 14x14): each reads
    # 4 x 4 patches of 4x4 x ceil(16 / 16 PLE lanes) x 40 cycles = 640.
    pool = _chain(tmp_path, "maxpool_s1")[1]
    assert pool[1:] == (["MAXPOOL_1D", "MAXPOOL_1D"], 0, 2 * 640)
