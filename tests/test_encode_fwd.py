"""Ethos-U85 Fast Weight format: hand-derived bit vectors (Vela 5.x's header rules) and round trips."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwopt.targets.ethos_u import fwd


def test_lut2_stream_bit_exact() -> None:
    # Weights 0,1,-1,0,2,0,0,1: 4 distinct -> LUT2. LUT in order of first appearance: [0, 1, -1, 2],
    # folded (|w|<<1)|sign -> 0, 2, 3, 4; codes 0,1,2,0,3,0,0,1.
    enc = fwd.encode(np.array([0, 1, -1, 0, 2, 0, 0, 1]))
    expected = bytearray(64)  # 32-byte header + 2 payload bytes, padded to 64
    expected[0] = 0b10  # raw flag (bit 0) clear, small-LUT flag (bit 1) set
    expected[15] = 0x04  # LUT[1] = 2 at bits 121..129 -> bit 122 = byte 15 bit 2
    expected[16] = 0x0C  # LUT[2] = 3 at bits 130..138 -> bits 130, 131 = byte 16 bits 2, 3
    expected[17] = 0x20  # LUT[3] = 4 at bits 139..147 -> bit 141 = byte 17 bit 5
    expected[32] = 0 | 1 << 2 | 2 << 4 | 0 << 6  # codes 0,1,2,0, first code in the low bits
    expected[33] = 3 | 0 << 2 | 0 << 4 | 1 << 6  # codes 3,0,0,1
    assert enc.mode is fwd.FwdMode.LUT2
    assert enc.data == bytes(expected)
    assert fwd.decode(enc.data, [8])[0].tolist() == [0, 1, -1, 0, 2, 0, 0, 1]


def test_lut4_and_raw_streams_bit_exact() -> None:
    # Five distinct values -> LUT4 (small-LUT flag clear), 4-bit codes.
    enc = fwd.encode(np.array([5, 5, 5, -3, 7, 1, 9]))
    assert enc.mode is fwd.FwdMode.LUT4
    assert enc.data[0] == 0
    # LUT in order of first appearance: 5, -3, 7, 1, 9; codes 0,0,0,1,2,3,4 packed two per byte.
    assert list(enc.data[32:36]) == [0x00, 0x10, 0x32, 0x04]
    # LUT[0] = fold(5) = 10 at bits 112..120: byte 14 = 10.
    assert enc.data[14] == 10
    # More than 16 values that fit int8 -> RAW with zero adjust 0: codes are the signed bytes.
    small = fwd.encode(np.array([-5, 3, *list(range(20))]))
    assert small.mode is fwd.FwdMode.RAW and small.data[0] == 1 and small.data[13] == 0
    assert list(small.data[32:35]) == [251, 3, 0]
    # The LUT field still holds the first 16 distinct values: LUT[0] = fold(-5) = 11.
    assert small.data[14] == 11
    # Below -128: z = -128 - min = 72, codes (w + 72) & 0xFF.
    values = np.array([-200, 0, 55, *list(range(-20, 0))])
    raw = fwd.encode(values)
    assert raw.mode is fwd.FwdMode.RAW
    assert raw.data[0] == 1 and raw.data[13] == 72  # raw flag; zero-adjust in bits 104..111
    assert list(raw.data[32:35]) == [128, 72, 127]
    assert raw.data[14] == 401 & 0xFF and raw.data[15] & 1 == 1  # LUT[0] = fold(-200) = 401
    assert len(raw.data) == 64
    assert fwd.decode(raw.data, [values.size])[0].tolist() == values.tolist()


def test_raw_range_limit_and_sizes() -> None:
    with pytest.raises(fwd.FwdError):
        fwd.encode(np.array([-128, 128, *list(range(20))]))
    assert not fwd.can_encode(np.array([-128, 128, *list(range(20))]))
    assert fwd.estimated_size(1000, 3) == 32 + 250
    assert fwd.estimated_size(1000, 16) == 32 + 500
    assert fwd.estimated_size(1000, 17) == 32 + 1000
    assert fwd.encoded_size(1000, fwd.FwdMode.LUT2) == 288  # 32 + 250 -> next multiple of 32


def test_decoder_rejects_bad_streams() -> None:
    enc = fwd.encode(np.array([1, 2, 3]))
    with pytest.raises(fwd.FwdError):
        fwd.decode(enc.data[:40], [3])
    bad = bytearray(enc.data)
    bad[5] = 1  # a reserved header bit
    with pytest.raises(fwd.FwdError):
        fwd.decode(bytes(bad), [3])


@st.composite
def _streams(draw: st.DrawFn) -> tuple[list[np.ndarray], int]:
    kind = draw(st.sampled_from(["lut2", "lut4", "raw", "random"]))
    if kind == "lut2":
        pool = draw(st.lists(st.integers(-255, 255), min_size=1, max_size=4, unique=True))
    elif kind == "lut4":
        pool = draw(st.lists(st.integers(-255, 255), min_size=5, max_size=16, unique=True))
    elif kind == "raw":
        lo = draw(st.integers(-255, 0))
        pool = list(range(lo, min(lo + 255, 255) + 1))
    else:
        lo = draw(st.integers(-255, 0))
        pool = draw(st.lists(st.integers(lo, min(lo + 255, 255)), min_size=1, max_size=300))
    n_streams = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    subs = [rng.choice(np.array(pool), size=draw(st.integers(0, 300))) for _ in range(n_streams)]
    if not any(s.size for s in subs):
        subs[0] = np.array(pool[:1])
    return subs, draw(st.integers(1, 40))


@settings(max_examples=150, deadline=None)
@given(_streams())
def test_fwd_round_trip(case: tuple[list[np.ndarray], int]) -> None:
    subs, block = case
    enc = fwd.encode(subs, block=block)
    allv = np.concatenate(subs)
    assert enc.mode is fwd.choose_mode(np.unique(allv).size)
    assert len(enc.data) % 32 == 0
    assert len(enc.data) == fwd.encoded_size(allv.size, enc.mode)
    back = fwd.decode(enc.data, enc.lengths, block=block)
    assert len(back) == len(subs)
    for a, b in zip(back, subs, strict=True):
        assert np.array_equal(a, b)


def test_interleave_order_by_hand() -> None:
    # Two sub-streams, block 2: a0 a1 b0 b1 a2 a3 b2 a4 (b exhausted after 3).
    a, b = np.array([10, 11, 12, 13, 14]), np.array([20, 21, 22])
    enc = fwd.encode([a, b], block=2, no_lut=True)
    assert enc.mode is fwd.FwdMode.RAW and enc.data[13] == 0
    codes = np.frombuffer(enc.data[32:40], dtype=np.int8).astype(int)
    assert codes.tolist() == [10, 11, 20, 21, 12, 13, 22, 14]
