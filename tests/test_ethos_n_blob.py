"""The N78 blob builder (entries placed chunk by chunk, re-spaced in place, banks interleaved in place)
against the layout written out by hand, the packed per-stream parameters against their fields, and the
decoder's block-wise scatter of the weights, and the requantisation multipliers in numpy."""

from __future__ import annotations

import numpy as np
import pytest

from hwopt.targets.ethos_n import blob, weight_decode
from hwopt.targets.ethos_n.batch_plan import PACKED_FIELDS, ParamArrays, ParamTable
from hwopt.targets.ethos_n.layout import geometry, sram_layout
from hwopt.targets.ethos_n.stream_params import StreamParams
from hwopt.targets.ethos_n.variants import VARIANTS
from hwopt.targets.ethos_n.weight_codec import (
    encode_layer,
    quantized_multiplier,
    quantized_multipliers,
    requant_from_scales,
)
from hwopt.targets.ethos_n.weight_decode import decode_weights


def _by_hand(entries: list[np.ndarray], banks: list[list[int]]) -> bytes:
    """Every entry zero-padded to the longest, each bank's entries in load order (short banks padded
    with empty entries), then the banks taken 16 bytes at a time in turn."""
    length = max(e.size for e in entries)
    per_bank = max(len(b) for b in banks)
    streams = []
    for group in banks:
        data = bytearray()
        for k in range(per_bank):
            e = entries[group[k]].tobytes() if k < len(group) else b""
            data += e + bytes(length - len(e))
        streams.append(bytes(data))
    out = bytearray()
    for word in range(0, per_bank * length, 16):
        for s in streams:
            out += s[word : word + 16]
    return bytes(out)


@pytest.mark.parametrize(("variant", "shape", "depth", "iteration"), [
    ("ethos-n78-4tops-4ple", (1, 1, 16, 200), 8, None),  # 200 entries on 16 banks: the last slots short
    ("ethos-n78-2tops-4ple", (1, 1, 64, 48), 16, 16),  # two OFMs per bank with IFM iterations
    ("ethos-n78-1tops-2ple", (1, 1, 24, 40), 8, 8),  # three iterations
])
def test_entries_in_chunks_give_the_layout_by_hand(monkeypatch: pytest.MonkeyPatch, variant: str,
                                                   shape: tuple[int, int, int, int], depth: int,
                                                   iteration: int | None) -> None:
    monkeypatch.setattr(blob, "RESPACE_BYTES", 48)  # re-space a few entries at a time
    v = VARIANTS[variant]
    geo = geometry(shape, v, "HWIO", (1, 1), (0, 0), depth, False, iteration)
    rng = np.random.default_rng(geo.num_entries)
    # Chunk lengths grow and shrink, so earlier entries are re-spaced more than once.
    cuts = [0, 1, 5, 9, geo.num_entries // 2, geo.num_entries]
    lengths = [16, 32, 16, 64, 48]
    entries: list[np.ndarray] = []
    builder = blob.BlobBuilder(geo, v)
    for lo, hi, length in zip(cuts[:-1], cuts[1:], lengths, strict=True):
        used = rng.integers(1, length + 1, hi - lo)
        chunk = np.zeros((hi - lo, length), dtype=np.uint8)
        for row, n in enumerate(used):
            chunk[row, :n] = rng.integers(1, 256, n)  # non-zero bytes: misplaced padding would show
            entries.append(chunk[row].copy())
        builder.add(lo, chunk)
    data = builder.finish()
    assert isinstance(data, bytes)
    assert builder.entry_len == 64
    assert data == _by_hand(entries, sram_layout(geo.num_entries, geo.num_iterations, v))


def test_entries_out_of_order_or_missing_are_refused() -> None:
    v = VARIANTS["ethos-n78-4tops-4ple"]
    geo = geometry((1, 1, 16, 64), v, "HWIO", (1, 1), (0, 0), 16, False, None)
    builder = blob.BlobBuilder(geo, v)
    with pytest.raises(ValueError, match="in order"):
        builder.add(1, np.zeros((1, 16), dtype=np.uint8))
    builder.add(0, np.zeros((2, 16), dtype=np.uint8))
    with pytest.raises(ValueError, match="missing"):
        builder.finish()


def test_packed_parameters_keep_every_field() -> None:
    rng = np.random.default_rng(3)
    streams = 50
    values = {name: rng.integers(0, 1 << width, streams) for name, _, width in PACKED_FIELDS}
    values["pal_len"] = rng.integers(0, 33, streams)
    palette = rng.integers(-255, 256, (streams, 32)) * (np.arange(32)[None, :] < values["pal_len"][:, None])

    class Plan:  # the LayerPlan fields ParamArrays reads
        def __getattr__(self, name: str) -> np.ndarray:
            return palette if name == "palette" else values[name]

    packed = ParamArrays.of(Plan())  # type: ignore[arg-type]
    assert packed.packed.dtype == np.uint32 and packed.packed.nbytes == 4 * streams
    half = streams // 2
    table = ParamTable([ParamArrays(packed.packed[:half], packed.pal_values[: int(values["pal_len"][:half].sum())]),
                        ParamArrays(packed.packed[half:], packed.pal_values[int(values["pal_len"][:half].sum()):])])
    for i in (0, half - 1, half, streams - 1):
        n = int(values["pal_len"][i])
        assert table[i] == StreamParams(int(values["zdiv"][i]), int(values["wdiv"][i]), bool(values["trunc"][i]),
                                        int(values["dirofs"][i]), tuple(int(p) for p in palette[i, :n]),
                                        int(values["pbits"][i]), bool(values["reload_params"][i]),
                                        bool(values["reload_palette"][i]))
    values["dirofs"] = np.full(streams, 32)  # beyond the 5-bit field
    with pytest.raises(ValueError, match="dirofs"):
        ParamArrays.of(Plan())  # type: ignore[arg-type]


@pytest.mark.parametrize(("layout", "shape", "kw"), [
    ("HWIO", (3, 3, 40, 24), {"stride": (2, 2), "padding": (1, 0)}),  # stride sub-maps: padded raw orders
    ("HWIM", (3, 3, 48, 2), {}),
    ("HWIO", (1, 1, 1500, 20), {"fully_connected": True}),  # padded to 2048 inputs, then cut
])
def test_weights_scattered_back_a_block_at_a_time(monkeypatch: pytest.MonkeyPatch, layout: str,
                                                  shape: tuple[int, int, int, int], kw: dict[str, object]) -> None:
    """The decoder puts the weights back one OFM per block as it does a whole layer at once."""
    v = VARIANTS["ethos-n78-4tops-4ple"]
    rng = np.random.default_rng(len(shape) + shape[2])
    w = rng.integers(1, 256, shape).astype(np.uint8)
    w[rng.random(shape) < 0.4] = 9  # the zero point
    args = {"variant": v, "layout": layout, "zero_point": 9, "dtype": np.uint8, **kw}
    enc = encode_layer(w, zero_point=9, variant=v, layout=layout, **kw)  # type: ignore[arg-type]
    whole = decode_weights(enc, shape=shape, **args)  # type: ignore[arg-type]
    monkeypatch.setattr(weight_decode, "ASSEMBLE_BLOCK", 1)
    blocks = decode_weights(enc, shape=shape, **args)  # type: ignore[arg-type]
    assert blocks.dtype == np.uint8 and blocks.flags.c_contiguous
    assert np.array_equal(whole, w) and np.array_equal(blocks, w)


def test_multipliers_in_numpy_equal_the_scalar_function() -> None:
    rng = np.random.default_rng(11)
    scales = np.concatenate([2.0 ** rng.uniform(-40, 15.9, 4000), [0.0, -1.0, 1 - 2.0**-20, 0.75, 2.0**-10,
                                                                     2.0**15, 65535.7, 2.0**-60]])
    mult, shift = quantized_multipliers(scales)
    assert mult.dtype == shift.dtype == np.int64
    assert list(zip(mult.tolist(), shift.tolist(), strict=True)) == [quantized_multiplier(float(s)) for s in scales]
    rq = requant_from_scales(0.5, [0.01], 0.25, -3, 1000)  # per tensor: one value seen 1000 times, no copies
    assert rq.multiplier.shape == (1000,) and rq.multiplier.strides == (0,) and not rq.per_channel
    assert (int(rq.multiplier[999]), int(rq.shift[0]), int(rq.zero_point[5])) == (
        *quantized_multiplier(float(np.float32(0.5) * np.float32(0.01) / np.float32(0.25))), -3)
