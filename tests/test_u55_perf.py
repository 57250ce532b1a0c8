"""The U55/U65 per-block model against Vela itself: the OFM block Vela's search picks and the MAC and
output-stage cycles of its estimator, read from Vela's optimisation database for generated networks."""

from __future__ import annotations

import pytest

from hwopt.format.tflite_io import read_model
from hwopt.targets import resolve_target
from hwopt.targets.ethos_u.analytic import structural_costs
from hwopt.targets.ethos_u.placement import ethos_u_geometry
from hwopt.targets.ethos_u.u55 import _ao_per_element, npu_query, weights_buffered
from hwopt.targets.ethos_u.u55_perf import NpuOp, Query, find_block, mac_op_cycles, reshape_to_increase_depth
from hwopt.targets.ethos_u.vela_config import CompilerOptions
from hwopt.targets.ethos_u.vela_engine import regor_compile
from hwopt.testing.generator import network_model

pytest.importorskip("ethosu.regor", reason="Vela (ethos-u-vela) is not installed")

VELA_OPS = {"Conv2D": NpuOp.CONV, "DepthwiseConv2D": NpuOp.DEPTHWISE, "AvgPool": NpuOp.POOL, "MaxPool": NpuOp.POOL}


def _rows(db: object, name: str) -> list[dict[str, str]]:
    t = db.tables.get(name)  # type: ignore[attr-defined]
    return [] if t is None else [dict(zip(t.header, r, strict=False)) for r in t.data]


def _vela_ops(data: bytes, config: str) -> list[dict[str, str]]:
    """Vela's per-operation rows (perf + perf_debug + perf_debug_main), for operators it ran as one operation."""
    out, _ = regor_compile(data, resolve_target(config), CompilerOptions(enable_db=True))
    db = out.opt_database
    source = {r["id"]: r["ext_key"] for r in _rows(db, "source")}
    main = {r["id"]: r for r in _rows(db, "perf_debug_main")}
    debug = {r["id"]: r for r in _rows(db, "perf_debug")}
    rows = []
    for p in _rows(db, "perf"):
        r = {**debug.get(p["id"], {}), **main.get(p["id"], {}), **p, "ext": source.get(p["source_id"], "")}
        rows.append(r)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["ext"]] = counts.get(r["ext"], 0) + (r["operator"] in VELA_OPS or r["op_cycles"] != "0")
    return [r for r in rows if r["operator"] in VELA_OPS and counts[r["ext"]] == 1]


@pytest.mark.parametrize(("seed", "config"), [(1, "ethos-u55-128"), (4, "ethos-u55-32"), (1, "ethos-u65-512"), (3, "ethos-u55-256")])
def test_block_and_mac_cycles_match_vela(seed: int, config: str) -> None:
    model = network_model(seed)
    target = resolve_target(config)
    geo = {g.op_index: g for g in ethos_u_geometry(read_model(model.data), target.family) if g.subgraph == 0}
    checked = 0
    for r in _vela_ops(model.data, config):
        g = geo[int(r["ext"])]
        q = npu_query(g)
        assert q is not None and q.op is VELA_OPS[r["operator"]], r["operator"]
        blk = find_block(q, target)
        assert blk.ofm == (int(r["ofm_block_h"]), int(r["ofm_block_w"]), int(r["ofm_block_c"])), (g.op, g.ofm)
        assert blk.ifm == (int(r["ifm_block_h"]), int(r["ifm_block_w"]), int(r["ifm_block_c"])), (g.op, g.ifm)
        assert blk.part_kernel == (r["traversal"] == "PartKernel") or q.op is not NpuOp.CONV
        # Vela's "mac_cycles" column: MAC cycles per block x blocks + one block of the output stage
        staged = target.const_memory != target.staging_memory and weights_buffered(g, q, blk, target)
        latency = target.memory_config(target.staging_memory if staged else target.const_memory).read_latency
        mc = mac_op_cycles(q, blk, target, r["ifm_memory"] or "Sram", r["ofm_memory"] or "Sram",
                           _ao_per_element(g, q, target), latency if g.weights is not None else None)
        assert int(mc.mac_per_block * mc.blocks + mc.ao_per_block) == pytest.approx(int(r["mac_cycles"]), abs=1)
        checked += 1
    assert checked >= 4


def test_block_search_examples() -> None:
    """Blocks Vela 5.2 picks for DS-CNN-like layers on u55-128 (read from its optimisation database)."""
    t = resolve_target("ethos-u55-128")
    dw = find_block(Query(NpuOp.DEPTHWISE, (25, 10, 172), (13, 5, 172), (3, 3), (2, 2), 8, False, False), t)
    assert (dw.ofm, dw.ifm) == ((10, 6, 16), (21, 14, 16))
    pw = find_block(Query(NpuOp.CONV, (13, 5, 172), (13, 5, 172), (1, 1), (1, 1), 8, False, False), t)
    assert (pw.ofm, pw.ifm, pw.part_kernel) == ((7, 6, 48), (7, 6, 32), False)
    # the whole standalone depthwise pass: 11280 cycles in Vela's estimate (IFM and OFM in SRAM)
    q = Query(NpuOp.DEPTHWISE, (25, 10, 172), (13, 5, 172), (3, 3), (2, 2), 8, False, False)
    assert mac_op_cycles(q, dw, t, "Sram", "Sram", 0.5, 32).total == 11280


def test_structural_cost_is_the_max_of_its_terms() -> None:
    model = network_model(1)
    t = resolve_target("ethos-u55-128")
    geo = ethos_u_geometry(read_model(model.data), t.family)
    for c in structural_costs(geo, t):
        if c.placement == "npu" and c.cycles:
            assert c.cycles == max(c.compute_cycles, c.weight_cycles, *c.memory_cycles.values())


def test_shallow_elementwise_reshape() -> None:
    """Shapes Vela 5.2 runs shallow elementwise and LUT operations in (its optimisation database)."""
    assert reshape_to_increase_depth((115, 115, 4)) == (115, 23, 20)
    assert reshape_to_increase_depth((64, 64, 1)) == (16, 16, 16)
    assert reshape_to_increase_depth((119, 30, 1)) == (17, 7, 30)


@pytest.mark.parametrize("seed", [100024, 100028, 100042, 100088, 100125, 100154])
def test_activation_fusion_follows_vela(seed: int) -> None:
    """An activation is fused into its producer exactly when Vela runs it as no pass of its own
    (after a convolution, unless Vela first deepened its shallow shape or it is a 16-bit lookup)."""
    from hwopt.targets.ethos_u.vela_engine import compile_model
    from hwopt.testing.generator import generate

    model = generate(seed, 0.15)
    t = resolve_target("ethos-u55-128")
    geo = {g.op_index: g for g in ethos_u_geometry(read_model(model.data), t.family) if g.subgraph == 0}
    acts = [r for r in compile_model(model.data, t).ops if r.op in ("RELU", "TANH", "LOGISTIC", "HARD_SWISH")]
    assert acts
    for r in acts:
        assert geo[r.op_index].chained == (r.cycles == 0), (r.op, geo[r.op_index].ofm)


@pytest.mark.parametrize(("seed", "config"), [(1, "ethos-u55-128"), (2, "ethos-u55-32"), (5, "ethos-u65-256")])
def test_network_total_close_to_vela(seed: int, config: str) -> None:
    """Whole generated networks (weight streams hidden under preceding operations, fused activations):
    the analytic total is within 2 % of Vela's own."""
    from hwopt.targets.ethos_u.analytic import ethos_u_layer_costs
    from hwopt.targets.ethos_u.vela_engine import compile_model

    model = network_model(seed)
    t = resolve_target(config)
    vela = compile_model(model.data, t).perf.cycles
    ours = sum(c.cycles for c in ethos_u_layer_costs(read_model(model.data), t))
    assert ours == pytest.approx(vela, rel=0.02)


@pytest.mark.parametrize(("seed", "config"), [(100009, "ethos-u65-256"), (100031, "ethos-u55-128"),
                                              (100110, "ethos-u55-256"), (100117, "ethos-u65-256")])
def test_concatenation_copies_like_vela(seed: int, config: str) -> None:
    """A concatenation costs the copies of the inputs its producers cannot write in place (a graph
    input, a tensor read twice), as Vela runs them."""
    from hwopt.targets.ethos_u.analytic import ethos_u_layer_costs
    from hwopt.targets.ethos_u.vela_engine import compile_model
    from hwopt.testing.generator import generate

    model = generate(seed, 0.15)
    t = resolve_target(config)
    vela = {r.op_index: r.cycles for r in compile_model(model.data, t).ops if r.op == "CONCATENATION"}
    ours = {c.op_index: c.cycles for c in ethos_u_layer_costs(read_model(model.data), t) if c.op == "CONCATENATION"}
    assert vela and set(vela) == set(ours)
    for i, v in vela.items():
        assert ours[i] == pytest.approx(v, rel=0.01, abs=2)


@pytest.mark.parametrize("seed", [100025, 100033, 100077, 100113])
def test_spatial_mean_like_vela(seed: int) -> None:
    """A mean over height and width costs Vela's depthwise pass with an H x W kernel plus its scaling."""
    from hwopt.targets.ethos_u.analytic import ethos_u_layer_costs
    from hwopt.targets.ethos_u.vela_engine import compile_model
    from hwopt.testing.generator import generate

    model = generate(seed, 0.15)
    t = resolve_target("ethos-u65-256")
    vela = {r.op_index: r.cycles for r in compile_model(model.data, t).ops if r.op == "MEAN"}
    ours = {c.op_index: c.cycles for c in ethos_u_layer_costs(read_model(model.data), t) if c.op == "MEAN"}
    assert vela and set(vela) == set(ours)
    for i, v in vela.items():
        assert ours[i] == pytest.approx(v, rel=0.03)


@pytest.mark.parametrize(("seed", "config"), [(100051, "ethos-u55-128"), (100541, "ethos-u55-128"),
                                              (100092, "ethos-u65-256"), (100887, "ethos-u55-256")])
def test_pad_copies_like_vela(seed: int, config: str) -> None:
    """A PAD costs Vela's copy of its input (unless the producer writes it in place) and one copy of
    the constant fill per padded side."""
    from hwopt.targets.ethos_u.analytic import ethos_u_layer_costs
    from hwopt.targets.ethos_u.vela_engine import compile_model
    from hwopt.testing.generator import generate

    model = generate(seed, 0.15)
    t = resolve_target(config)
    vela = {r.op_index: r.cycles for r in compile_model(model.data, t).ops if r.op.startswith("PAD")}
    ours = {c.op_index: c.cycles for c in ethos_u_layer_costs(read_model(model.data), t) if c.op.startswith("PAD")}
    assert vela and set(vela) == set(ours)
    for i, v in vela.items():
        assert ours[i] == pytest.approx(v, rel=0.01, abs=2)


def test_fully_connected_on_an_unflattened_input_encodes_the_whole_input() -> None:
    """A fully connected layer reading a 16x16x16 feature map has 16 x 16 x 16 weights per output,
    not 16: its weight stream and its cycles (weight-bound from flash) follow Vela's."""
    from hwopt.targets.ethos_u.analytic import ethos_u_layer_costs
    from hwopt.targets.ethos_u.vela_engine import compile_model
    from tests.modelgen import int8_conv_model

    data, t = int8_conv_model(size=16, channels=16), resolve_target("ethos-u55-128")
    vela = next(r for r in compile_model(data, t).ops if r.op == "FULLY_CONNECTED")
    ours = next(c for c in ethos_u_layer_costs(read_model(data), t) if c.op == "FULLY_CONNECTED")
    assert ours.encoded_weight_bytes == pytest.approx(vela.encoded_weight_bytes, rel=0.05)
    assert ours.cycles == pytest.approx(vela.cycles, rel=0.05)
