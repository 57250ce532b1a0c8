"""The U85 per-operation model against Vela itself: given Vela's own block configuration (read from its
optimisation database), the MAC, output-stage and command-issue cycles of every operation, and the
whole-layer cycles hwopt's estimate gives convolution and pooling layers, for generated layers, networks and a real model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hwopt.format.tflite_io import read_model
from hwopt.targets import resolve_target
from hwopt.targets.ethos_u import u85_perf as u85p
from hwopt.targets.ethos_u.analytic import structural_costs
from hwopt.targets.ethos_u.placement import ethos_u_geometry
from hwopt.targets.ethos_u.u85_arch import U85Op
from hwopt.targets.ethos_u.vela_blocks import VelaFm, VelaOpPerf, compile_with_db, op_perf_from_compiled
from hwopt.targets.ethos_u.vela_engine import compile_model
from hwopt.targets.target import Target
from hwopt.testing.generator import layer_model, network_model

pytest.importorskip("ethosu.regor", reason="Vela (ethos-u-vela) is not installed")

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
OPS = {"Conv2D": U85Op.CONV, "DepthwiseConv2D": U85Op.DEPTHWISE, "FullyConnected": U85Op.VECTOR_PRODUCT,
       "MaxPool": U85Op.POOL, "AvgPool": U85Op.POOL, "Add": U85Op.ELEMENTWISE,
       "Sub": U85Op.ELEMENTWISE, "Mul": U85Op.ELEMENTWISE}
LAYERS = ("CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D")
CHAINED = {"Add", "Sub", "Mul", "Maximum", "Minimum"}
ACTIVATIONS = {"Relu", "Relu6", "ReluN1To1", "Clamp"}


def _fm(f: VelaFm, target: Target) -> u85p.Fm:
    return u85p.Fm(f.shape, f.bits, f.nhwc, f.memory or target.arena_memory)


def _query(r: VelaOpPerf, target: Target) -> tuple[u85p.U85Operation, u85p.U85Config]:
    """Vela's operation as a query, with Vela's block configuration."""
    op = OPS[r.operator]
    weights = op in (U85Op.CONV, U85Op.DEPTHWISE, U85Op.VECTOR_PRODUCT)
    scales = (target.staging_memory if r.weight_buffering else target.const_memory) if weights else None
    ao = u85p.output_cycles_per_element(target, r.ifm.bits, r.ofm.bits, op is U85Op.ELEMENTWISE)
    # each elementwise operation chained onto the output stage adds its own rate (activations run beside)
    ao += sum(u85p.output_cycles_per_element(target, 8, 8, True) for c in r.chained if c in CHAINED)
    q = u85p.U85Operation(op, _fm(r.ifm, target), _fm(r.ofm, target), r.kernel,
                      _fm(r.ifm2, target) if r.ifm2 is not None else None, "Sparse2_4" in r.weight_format, ao, scales)
    return q, u85p.U85Config(r.ofm_block, r.ifm_block, r.ublock, r.traversal == "PartKernel", r.ifm.bits == 16)


def _check_terms(data: bytes, config: str) -> tuple[int, int]:
    """(operations checked, operations whose MAC, output-stage and command-issue terms equal Vela's)."""
    target = resolve_target(config)
    checked = exact = 0
    for r in op_perf_from_compiled(compile_with_db(data, target)):
        if r.operator not in OPS or r.ifm.bits != 8 or not set(r.chained) <= CHAINED | ACTIVATIONS:
            continue
        q, cfg = _query(r, target)
        c = u85p.op_cycles(q, cfg, target)
        checked += 1
        exact += (c.mac, c.ao, c.cmd) == (r.mac_cycles, r.ao_cycles, r.cmd_cycles) if q.op not in u85p.ELEMENTWISE_TIMED else (
            (c.ao, c.cmd) == (r.ao_cycles, r.cmd_cycles))
    return checked, exact


@pytest.mark.parametrize("config", ["ethos-u85-256", "ethos-u85-1024"])
def test_block_terms_match_vela_on_generated_layers(config: str) -> None:
    checked = exact = 0
    for seed in range(1, 25):
        c, e = _check_terms(layer_model(seed).data, config)
        checked, exact = checked + c, exact + e
    assert checked >= 20
    assert exact >= 0.9 * checked, (exact, checked)


@pytest.mark.parametrize("config", ["ethos-u85-128", "ethos-u85-512", "ethos-u85-2048"])
def test_block_terms_match_vela_on_networks(config: str) -> None:
    checked = exact = 0
    for seed in range(1, 7):
        c, e = _check_terms(network_model(seed).data, config)
        checked, exact = checked + c, exact + e
    assert checked >= 20
    assert exact >= 0.9 * checked, (exact, checked)


@pytest.mark.parametrize("name", ["mlperftiny_resnet8_int8", "kws_micronet_m"])  # kws: a single-channel input
def test_block_terms_match_vela_on_a_real_model(name: str) -> None:
    path = MODELS / f"{name}.tflite"
    if not path.exists():
        pytest.skip("the shared models (../shared/models) are not present")
    checked, exact = _check_terms(path.read_bytes(), "ethos-u85-256")
    assert checked >= 8
    assert exact >= checked - 1, (exact, checked)


def test_transfer_bursts_and_channel_bandwidth() -> None:
    """Hand-computed: an NHWC 3-channel IFM block read from DRAM moves 16-byte bursts of a 128-byte
    burst length (8x the bytes); a DRAM weight channel is limited by its read buffer."""
    t = resolve_target("ethos-u85-256")
    dram = t.memory_config("Dram")
    fm = u85p.Fm((16, 16, 3), 8, True, "Dram")
    assert u85p.transfer_bytes(t, fm, (10, 20, 16), 480, True) == 480 * dram.burst_length // 16
    # 128 read-buffer words of 16 bytes = 16 bursts of 128 bytes in flight, x 0.8 usable, over the latency
    rb = 128 / (dram.burst_length // 16)
    want = min(t.bandwidth("Dram"), dram.burst_length * min(rb, dram.max_reads * dram.ports_used * 0.8)
               / dram.read_latency * 0.8)
    assert u85p.channel_bandwidth(t, "Dram", u85p.Channel.WEIGHT) == pytest.approx(want)


@pytest.mark.parametrize("config", ["ethos-u85-256", "ethos-u85-1024"])
def test_layer_cycles_follow_vela(config: str) -> None:
    """hwopt's own estimate (its own block search, weight buffering and overlap) of convolution,
    depthwise and pooling layers: most equal Vela's per-layer cycles, and the median error is small."""
    target = resolve_target(config)
    errors = []
    for model in [*(layer_model(s) for s in range(1, 61)), *(network_model(s) for s in range(1, 9))]:
        geo = list(ethos_u_geometry(read_model(model.data), target.family))
        ops = {g.op_index: g.op for g in geo if g.subgraph == 0 and g.op in LAYERS}
        if not ops:
            continue
        ours = {c.op_index: c.cycles for c in structural_costs(geo, target) if c.subgraph == 0}
        vela = {o.op_index: o.cycles for o in compile_model(model.data, target).ops if o.op_index in ops}
        errors += [abs(ours[i] - v) / v for i, v in vela.items() if v > 0]
    assert len(errors) >= 60
    assert np.mean(np.array(errors) <= 0.01) >= 0.5
    assert np.median(errors) <= 0.02
