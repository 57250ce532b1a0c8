"""Ethos-U weight ordering: hand-written brick order, Vela's codec, and MLW round trips."""

from __future__ import annotations

import numpy as np
import pytest

from hwopt.targets.ethos_u.weight_layout import BlockConfig, EthosUArch, Traversal, u55_order, u85_order
from hwopt.targets.ethos_u.weights import choose_traversal, encode_u55, encode_u85

U55_128 = EthosUArch("u55", 128, 1, 8, 8)
U65_512 = EthosUArch("u65", 256, 2, 8, 8)
U85_256 = EthosUArch("u85", 256, 1, 8, 8, 1)
U85_1024 = EthosUArch("u85", 1024, 1, 8, 8, 4)


def _tiny() -> np.ndarray:
    # O=2, H=1, W=2, I=3 with every weight distinct: value = 100*o + 10*x + i + 1.
    o, x, i = np.meshgrid(np.arange(2), np.arange(2), np.arange(3), indexing="ij")
    return (100 * o + 10 * x + i + 1).reshape(2, 1, 2, 3)


def test_u55_depth_first_brick_order_by_hand() -> None:
    # Depth-first, 8-bit: one OFM block, one 32-deep IFM block; per kernel element the four
    # 8-deep IFM micro-blocks, each 8 OFM x 8 IFM (OFM outer). Only OFM 0-1, IFM 0-2 are real.
    expected: list[int] = []
    for x in range(2):
        for ifm_ublock in range(4):
            for o in range(8):
                for i in range(8):
                    real = ifm_ublock == 0 and o < 2 and i < 3
                    expected.append(100 * o + 10 * x + i + 1 if real else 0)
    got = u55_order(_tiny(), ifm_ublock=8, ofm_ublock=8, ofm_block=16, traversal=Traversal.DEPTH_FIRST)
    assert got.tolist() == expected


def test_u55_part_kernel_brick_order_by_hand() -> None:
    # Part-kernel-first: IFM block clipped to 3 channels, kernel elements padded to 4.
    expected: list[int] = []
    for ke in range(4):
        for o in range(8):
            for i in range(8):
                real = ke < 2 and o < 2 and i < 3
                expected.append(100 * o + 10 * ke + i + 1 if real else 0)
    got = u55_order(_tiny(), ifm_ublock=8, ofm_ublock=8, ofm_block=16, traversal=Traversal.PART_KERNEL)
    assert got.tolist() == expected


def test_u85_serpentine_order_by_hand() -> None:
    # U85 depth-first, 2x2 kernel: elements (0,0), (0,1), then the second row reversed (1,1), (1,0);
    # per element OFM groups of 4 (0-3, 4-7), 4 OFM, 8 IFM channels.
    w = np.arange(1, 4 * 2 * 2 * 8 + 1).reshape(4, 2, 2, 8)
    cfg = BlockConfig(Traversal.DEPTH_FIRST, 16, None, 8, 8)
    expected: list[int] = []
    for y, x in ((0, 0), (0, 1), (1, 1), (1, 0)):
        for group in (0, 4):
            for o in range(4):
                for i in range(8):
                    expected.append(int(w[group + o, y, x, i]) if group + o < 4 else 0)
    assert u85_order(w, arch=U85_256, config=cfg).tolist() == expected


def test_u85_streams_split_ofm_groups() -> None:
    # With 4 decoder streams and an OFM micro-block of 16, stream s holds OFM group s (channels 4s..4s+3).
    w = np.arange(1, 16 * 8 + 1).reshape(16, 1, 1, 8)
    cfg = BlockConfig(Traversal.DEPTH_FIRST, 16, None, 8, 16)
    for s in range(4):
        got = u85_order(w, arch=U85_1024, config=cfg, stream=s)
        assert got.tolist() == w[4 * s:4 * s + 4].reshape(-1).tolist()


@pytest.mark.parametrize("traversal", list(Traversal))
@pytest.mark.parametrize("shape", [(16, 3, 3, 16), (37, 5, 5, 3), (10, 1, 1, 70), (24, 9, 9, 20)])
def test_u55_order_matches_vela_codec(traversal: Traversal, shape: tuple[int, int, int, int]) -> None:
    from ethosu import mlw_codec

    rng = np.random.default_rng(sum(shape))
    w = rng.integers(-127, 128, shape)
    if traversal is Traversal.DEPTHWISE:
        w = w[..., :1]
    for bits, decomp in ((8, (8, 8)), (16, (4, 4))):
        data, n = mlw_codec.reorder_encode(8, 8, w.astype(np.int16), 16, int(traversal is Traversal.DEPTHWISE),
                                           int(traversal is Traversal.PART_KERNEL), bits, *decomp)
        ours = u55_order(w, ifm_ublock=8, ofm_ublock=8, ofm_block=16, traversal=traversal, ifm_bits=bits, decomp=decomp)
        assert n == ours.size
        assert np.array_equal(np.asarray(mlw_codec.decode(data)), ours)


def test_padding_count_from_the_facts() -> None:
    # OHWI 16x3x3x16 depth-first 8-bit -> 4 608 coded weights for 2 304 real ones.
    w = np.ones((16, 3, 3, 16), dtype=np.int32)
    assert u55_order(w, ifm_ublock=8, ofm_ublock=8, ofm_block=16, traversal=Traversal.DEPTH_FIRST).size == 4608


def test_traversal_rule() -> None:
    assert choose_traversal(3, 9, 8, False) is Traversal.PART_KERNEL  # shallow IFM
    assert choose_traversal(16, 9, 8, False) is Traversal.PART_KERNEL  # 16/32 depth use < 16*9/(16*12)
    assert choose_traversal(32, 9, 8, False) is Traversal.DEPTH_FIRST
    assert choose_traversal(16, 1, 8, False) is Traversal.DEPTH_FIRST
    assert choose_traversal(64, 9, 8, True) is Traversal.DEPTHWISE


@pytest.mark.parametrize("kind", ["dense", "sparse", "clustered", "zeros"])
def test_mlw_round_trips(kind: str) -> None:
    rng = np.random.default_rng(1)
    w = rng.normal(0, 30, (48, 3, 3, 24)).clip(-127, 127).astype(np.int32)
    if kind == "sparse":
        w[rng.random(w.shape) < 0.8] = 0
    elif kind == "clustered":
        w = rng.choice(np.array([-60, -7, 0, 9, 44]), w.shape)
    elif kind == "zeros":
        w[:] = 0
    cfg = BlockConfig(Traversal.DEPTH_FIRST, 16, (0, 16, 48))
    for arch in (U55_128, U65_512):
        enc = encode_u55(w, arch, cfg)
        assert enc.roundtrip_ok
        assert len(enc.streams) == 2 * arch.cores  # one per depth slice and core
        assert all(len(s.data) % 16 == 0 for s in enc.streams)
    u85 = encode_u85(w, U85_256, BlockConfig(Traversal.PART_KERNEL, 16, None, 16, 8))
    assert u85.roundtrip_ok
    if kind in ("clustered", "zeros"):
        assert u85.fast_bytes is not None
    if kind == "zeros":
        assert not u85.fmt.fast and u85.fmt.sparse  # zero runs beat 2 bits/weight; zeros pass the 2:4 test


def test_u65_cores_take_interleaved_channels() -> None:
    from ethosu import mlw_codec

    w = np.arange(16 * 8).reshape(16, 1, 1, 8) % 200 - 100
    enc = encode_u55(w, U65_512, BlockConfig(Traversal.DEPTH_FIRST, 16))
    core1 = np.asarray(mlw_codec.decode(bytearray(enc.streams[1].data)))
    # Core 1 reads OFM 1, 3, 5, ... (8 channels = one micro-block), each with its 8 IFM channels then 24 zeros.
    assert core1[:8].tolist() == w[1, 0, 0].tolist()
    assert core1[8:16].tolist() == w[3, 0, 0].tolist()


def test_u85_format_choice_follows_size_rule() -> None:
    from hwopt.targets.ethos_u import fwd

    rng = np.random.default_rng(3)
    cfg = BlockConfig(Traversal.DEPTH_FIRST, 16, None, 64, 8)
    # Uniform int8 over all 256 values: MLW needs more than 8 bits (9-bit direct codes), raw FWD 8 + header.
    wide = encode_u85(rng.integers(-128, 128, (64, 1, 1, 64)), U85_256, cfg)
    assert wide.fmt.value == "Fast" and wide.roundtrip_ok
    assert wide.encoded_bytes == 32 + 64 * 64  # raw codes, already a multiple of 32 bytes
    # Four values, uniform: MLW's 2-bit palette indices beat FWD's 2 bits + 32-byte header.
    few = encode_u85(rng.choice(np.array([-100, 100, 50, -50]), (64, 1, 1, 64)), U85_256, cfg)
    assert few.fmt.value == "Default" and few.fast_bytes is not None
    assert fwd.estimated_size(64 * 64, 4) >= few.default_bytes
