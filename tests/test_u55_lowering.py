"""U55/U65 operators Vela lowers into several NPU operations, or whose operands it reads in its own
way, against Vela itself: per-layer cycles of small built models, with Vela's figure the golden one."""

from __future__ import annotations

import numpy as np
import pytest

from hwopt.format.tflite_io import read_model
from hwopt.targets import resolve_target
from hwopt.testing import ops
from hwopt.testing.builder import GraphBuilder

pytest.importorskip("ethosu.regor", reason="Vela (ethos-u-vela) is not installed")


def _compare(data: bytes, config: str, op: str) -> list[tuple[int, int]]:
    """(Vela, analytic) cycles of every `op` layer of the model on `config`."""
    from hwopt.targets.ethos_u.analytic import ethos_u_layer_costs
    from hwopt.targets.ethos_u.vela_engine import compile_model

    t = resolve_target(config)
    vela = {r.op_index: r.cycles for r in compile_model(data, t).ops if r.op == op}
    ours = {c.op_index: c.cycles for c in ethos_u_layer_costs(read_model(data), t) if c.op == op}
    assert vela and set(vela) == set(ours)
    return [(v, ours[i]) for i, v in sorted(vela.items())]


def _squeeze_excite(h: int, w: int, c: int) -> bytes:
    """conv 1x1 -> x * mean(x): a MUL whose second operand is a 1x1xC feature map broadcast over H x W."""
    g = GraphBuilder(np.random.default_rng(7), "broadcast mul")
    x0 = g.activation((1, h, w, c), g.random_act("int8"))
    x = ops.conv2d(g, x0, c, (1, 1))
    s = ops.mean(g, x)
    y = ops.binary(g, "MUL", x, s)
    y = ops.conv2d(g, y, c, (1, 1))
    g.io([x0], [y])
    return g.build()


@pytest.mark.parametrize(("shape", "config"), [((80, 80, 16), "ethos-u55-256"), ((20, 20, 72), "ethos-u65-512"),
                                               ((10, 10, 120), "ethos-u55-128")])
def test_broadcast_mul_reads_each_operand_once(shape: tuple[int, int, int], config: str) -> None:
    """The broadcast operand is read once per OFM element, like the first (Vela's element access)."""
    for vela, ours in _compare(_squeeze_excite(*shape), config, "MUL"):
        assert ours == pytest.approx(vela, rel=0.02)


@pytest.mark.parametrize(("seed", "config", "rel"), [(100628, "ethos-u55-256", 0.01), (100923, "ethos-u55-128", 0.12)])
def test_u55_weights_read_once_stay_in_flash(seed: int, config: str, rel: float) -> None:
    """On a U55 (feature maps in the staging SRAM) weights read once are streamed from flash, not
    buffered: every convolution of a generated network within `rel` of Vela (40-55 % off when buffered)."""
    from hwopt.testing.generator import generate

    data = generate(seed, 0.15).data
    for op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        for vela, ours in _compare(data, config, op):
            assert ours == pytest.approx(vela, rel=rel)


def _small_elementwise(c: int, fused_lookup: bool) -> bytes:
    """conv 1x1 -> x * scalar constant, then (x + conv(x)) followed by a LOGISTIC Vela fuses into the ADD."""
    g = GraphBuilder(np.random.default_rng(11), "small elementwise")
    x0 = g.activation((1, 1, 1, c), g.random_act("int8"))
    x = ops.conv2d(g, x0, c, (1, 1))
    y = ops.binary(g, "MUL", x, g.const_act((1, 1, 1, 1), g.random_act("int8")))
    z = ops.binary(g, "ADD", y, ops.conv2d(g, y, c, (1, 1)))
    if fused_lookup:
        z = ops.unary(g, z, "LOGISTIC")
    z = ops.conv2d(g, z, c, (1, 1))
    g.io([x0], [z])
    return g.build()


@pytest.mark.parametrize("config", ["ethos-u65-512", "ethos-u65-256", "ethos-u55-64"])
def test_small_elementwise_waits_for_constants_not_for_fused_tables(config: str) -> None:
    """A scalar constant operand is read from the constant memory (a DRAM read latency on the U65 sets
    the command floor of a short operation); a lookup table fused into an ADD costs no copy."""
    data = _small_elementwise(240, True)
    for vela, ours in _compare(data, config, "MUL") + _compare(data, config, "ADD"):
        assert ours == pytest.approx(vela, rel=0.05, abs=2)
