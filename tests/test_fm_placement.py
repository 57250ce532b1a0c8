"""Ethos-U85 feature-map placement (which intermediates Vela keeps in SRAM when the arena is in DRAM)
against the memories Vela itself gives each convolution's input and output."""

from __future__ import annotations

import pytest

from hwopt.format.tflite_io import read_model
from hwopt.targets import resolve_target
from tests.modelgen import conv_chain, conv_times_input

pytest.importorskip("ethosu.regor", reason="Vela (ethos-u-vela) is not installed")

CONFIG = "ethos-u85-256"  # Dedicated_Sram_384KB: the arena in DRAM, 384 KB of SRAM


def _vela_memories(data: bytes) -> dict[int, tuple[str, str]]:
    """(IFM, OFM) memory of each input operator's first NPU operation in Vela's optimisation database."""
    from hwopt.targets.ethos_u.vela_engine import _table, compile_model

    db = compile_model(data, resolve_target(CONFIG)).compiled.opt_database
    perf = {p["id"]: p for p in _table(db, "perf")}
    source = {s["id"]: s for s in _table(db, "source")}
    out: dict[int, tuple[str, str]] = {}
    for d in _table(db, "perf_debug"):
        key = source.get(perf.get(d["id"], {}).get("source_id", ""), {}).get("ext_key", "")
        if key != "" and int(perf[d["id"]]["op_cycles"] or 0) > 0:
            out.setdefault(int(key), (d["ifm_memory"], d["ofm_memory"]))
    return out


def _ours(data: bytes) -> tuple[dict[int, tuple[str, str]], dict[int, int]]:
    from hwopt.targets.ethos_u.analytic import ethos_u_layer_costs
    from hwopt.targets.ethos_u.cost_common import io_memories
    from hwopt.targets.ethos_u.fm_placement import place_feature_maps
    from hwopt.targets.ethos_u.placement import ethos_u_geometry

    t = resolve_target(CONFIG)
    model = read_model(data)
    geo = place_feature_maps(ethos_u_geometry(model, t.family), t)
    return ({g.op_index: io_memories(g, t) for g in geo}, {c.op_index: c.cycles for c in ethos_u_layer_costs(model, t)})


@pytest.mark.parametrize(("model", "sram"), [
    (lambda: conv_chain(24), True),  # 24x24x64 intermediates (36 KB): all stay in SRAM
    # 64x64x64 (256 KB): no two fit together, so Vela cascades the chain; its intermediates are
    # rolling buffers in SRAM
    (lambda: conv_chain(64), True),
    # the MUL reads the graph input from DRAM, so Vela evicts its other operand, the convolution's output
    (conv_times_input, False),
])
def test_placed_like_vela(model: object, sram: bool) -> None:
    """Every pass reads and writes the memories Vela gives it; each convolution costs what Vela says."""
    from hwopt.targets.ethos_u.vela_engine import compile_model

    data = model()  # type: ignore[operator]
    vela = _vela_memories(data)
    memories, cycles = _ours(data)
    assert vela and {i: memories[i] for i in vela} == vela
    assert (vela[0][1] == "Sram") == sram  # the first pass's output, an intermediate
    labels = {r.op_index: r.cycles for r in compile_model(data, resolve_target(CONFIG)).ops}
    convs = [op.index for op in read_model(data).subgraphs[0].operators if op.op == "CONV_2D"]
    for i in convs:
        assert cycles[i] == pytest.approx(labels[i], rel=0.05)
