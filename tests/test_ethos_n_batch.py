"""The batched N78 layer encoder against the one-stream codec, stream by stream.

The one-stream codec (`stream_codec`, checked bit for bit against Arm's support library) is run
here stream after stream with the OG state carried by hand; the batched encoder must choose the
same parameters and produce the same bits for every stream, including the cases the chain logic
exists for: a palette already held by the OG, all-zero streams that keep the OG's parameters,
per-channel requantisation reloads and IFM iterations.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from hwopt.targets.ethos_n import batch_decode, layer_chunks
from hwopt.targets.ethos_n.layout import geometry
from hwopt.targets.ethos_n.stream_codec import (
    INITIAL_PARAMS,
    MAX_SYMBOL,
    OfmHeader,
    StreamParams,
    plan_stream,
    stream_items,
    to_symbols,
)
from hwopt.targets.ethos_n.variants import VARIANTS
from hwopt.targets.ethos_n.weight_codec import OfmRequant, encode_layer, encoded_size
from hwopt.targets.ethos_n.weight_decode import decode_layer_full, decode_weights


def _sequential(w: np.ndarray, variant: str, stripe_depth: int | None, iteration: int | None,
                rq: OfmRequant) -> tuple[list[StreamParams], list[int]]:
    """Params and bit lengths of every HWIO stream, one stream at a time (zero point 0, bias 0)."""
    v = VARIANTS[variant]
    geo = geometry(w.shape, v, "HWIO", (1, 1), (0, 0), stripe_depth, False, iteration)
    iters, n = geo.num_iterations, v.ifm_parallel
    flat = w.reshape(-1, w.shape[3]).astype(np.int64)
    states: dict[int, tuple[StreamParams, bool, tuple[int, int, int]]] = {}
    sets = -(-geo.stripe_depth // geo.in_parallel)
    params: list[StreamParams] = []
    bits: list[int] = []
    for s in range(geo.num_ofms * iters):
        ofm, it = divmod(s, iters)
        og = geo.og_of(ofm)
        prev, initial, prev_rq = states.get(og, (INITIAL_PARAMS, True, (0, 0, 0)))
        initial = initial or (iters > 1 and it == 0) or (ofm % geo.stripe_depth == og and sets > 1)
        order = geo.orders[it]
        sym = to_symbols(np.where(order >= 0, flat[np.maximum(order, 0), ofm], 0))
        r = (int(rq.multiplier[ofm]), int(rq.shift[ofm]), int(rq.zero_point[ofm]))
        header = OfmHeader(0, *r, reload=rq.per_channel or ofm < geo.in_parallel or r != prev_rq)
        plan = plan_stream(sym, np.bincount(sym, minlength=MAX_SYMBOL + 1), n, prev, initial)
        params.append(plan.params)
        bits.append(stream_items(header, plan, n)[3])
        states[og] = (plan.params, False, r)
    return params, bits


def _layer(kind: str, rng: np.random.Generator, shape: tuple[int, int, int, int]) -> np.ndarray:
    w = np.clip(np.round(rng.normal(0, 20, shape)), -127, 127)
    if kind == "sparse":
        w *= rng.random(shape) < 0.3
    elif kind == "clustered":
        w = rng.choice([-40, -7, 0, 3, 12, 60], shape)  # one codebook: OGs keep their palette
    elif kind == "zero_ofms":
        w[..., 1::3] = 0  # all-zero streams keep the OG's parameters
    return w.astype(np.int8)


@pytest.mark.parametrize("variant", ["ethos-n78-1tops-2ple", "ethos-n78-4tops-4ple", "ethos-n78-8tops-2ple"])
@pytest.mark.parametrize("kind", ["dense", "sparse", "clustered", "zero_ofms"])
@pytest.mark.parametrize(("shape", "depth", "iteration"), [((3, 3, 24, 40), None, None), ((1, 1, 64, 32), 16, 32)])
def test_batched_streams_equal_one_stream_codec(variant: str, kind: str, shape: tuple[int, int, int, int],
                                                depth: int | None, iteration: int | None) -> None:
    rng = np.random.default_rng(zlib.crc32(repr((variant, kind, shape)).encode()))
    w = _layer(kind, rng, shape)
    cout = shape[3]
    rq = OfmRequant(rng.integers(1, 60000, cout), rng.integers(1, 40, cout), np.full(cout, 3),
                    per_channel=kind == "sparse")
    enc = encode_layer(w, zero_point=0, variant=VARIANTS[variant], layout="HWIO", requant=rq,
                       stripe_depth=depth, iteration_size=iteration)
    params, bits = _sequential(w, variant, depth, iteration, rq)
    assert tuple(enc.params) == tuple(params)
    assert list(enc.stream_bits) == bits
    # The blob parses with the one-stream decoder into the same weights, headers and parameters.
    kw = {"variant": VARIANTS[variant], "layout": "HWIO", "zero_point": 0, "stripe_depth": depth,
          "iteration_size": iteration}
    back = decode_layer_full(enc, shape=shape, **kw)  # type: ignore[arg-type]
    assert np.array_equal(back.weights, w)
    assert tuple(back.params) == tuple(params)
    size = encoded_size(w, requant=rq, **kw)  # type: ignore[arg-type]
    assert (size.total_bytes, size.max_stripe_bytes) == (len(enc.data), enc.max_stripe_bytes)


@pytest.mark.parametrize("seed", [6, 11, 25])
def test_held_palette_tips_the_rle_choice(seed: int) -> None:
    """Short clustered, sparse streams: whether the OG already holds a palette decides RLE on or off."""
    rng = np.random.default_rng(seed)
    shape = (1, 1, int(rng.choice([8, 16, 24])), 32)
    values = [-40, -7, 3, 12, 60][: int(rng.integers(2, 6))]
    w = (rng.choice(values, shape) * (rng.random(shape) < rng.uniform(0.4, 0.95))).astype(np.int8)
    rq = OfmRequant(np.full(32, 1000), np.full(32, 9), np.full(32, 0))
    enc = encode_layer(w, zero_point=0, variant=VARIANTS["ethos-n78-4tops-4ple"], layout="HWIO", requant=rq)
    params, bits = _sequential(w, "ethos-n78-4tops-4ple", None, None, rq)
    assert tuple(enc.params) == tuple(params)
    assert list(enc.stream_bits) == bits
    assert any(not p.reload_palette and p.palette for p in params)  # a held palette was reused


@pytest.mark.parametrize(("kind", "depth", "iteration"), [("zero_ofms", 32, None), ("clustered", 32, None),
                                                         ("dense", 16, 32), ("clustered", 48, 32),
                                                         ("clustered", 16, None), ("zero_ofms", 16, None)])
def test_layer_in_stripe_chunks_equals_one_stream_codec(monkeypatch: pytest.MonkeyPatch, kind: str,
                                                        depth: int | None, iteration: int | None) -> None:
    """A layer encoded one stripe at a time (as large layers are) still equals the stream-by-stream
    codec: what each OG holds is carried across the cut (with one OFM per OG per stripe nothing
    restarts the decoder there, so held palettes and parameters are not resent), and the
    requantisation reload still looks at the previous stripe's last OFM on the same OG."""
    monkeypatch.setattr(layer_chunks, "CHUNK_WEIGHTS", 1)
    rng = np.random.default_rng(zlib.crc32(repr((kind, depth, iteration)).encode()))
    shape = (1, 1, 64, 88)  # the last stripe is partial
    w = _layer(kind, rng, shape)
    rq = OfmRequant(rng.choice([1000, 2000], 88), np.full(88, 9), np.full(88, 0))
    v = VARIANTS["ethos-n78-4tops-4ple"]
    geo = geometry(shape, v, "HWIO", (1, 1), (0, 0), depth, False, iteration)
    assert len(layer_chunks.chunk_bounds(geo)) == geo.num_stripes > 1
    enc = encode_layer(w, zero_point=0, variant=v, layout="HWIO", requant=rq, stripe_depth=depth,
                       iteration_size=iteration)
    params, bits = _sequential(w, "ethos-n78-4tops-4ple", depth, iteration, rq)
    assert tuple(enc.params) == tuple(params)
    assert enc.stream_bits.tolist() == bits
    back = decode_layer_full(enc, shape=shape, variant=v, layout="HWIO", zero_point=0, stripe_depth=depth,
                             iteration_size=iteration)
    assert np.array_equal(back.weights, w)
    assert np.array_equal(back.multiplier, rq.multiplier)
    # The numpy decoder one stripe at a time too: what each OG holds is carried between batches.
    monkeypatch.setattr(batch_decode, "HINTED_BATCH", 1)
    assert np.array_equal(decode_weights(enc, shape=shape, variant=v, layout="HWIO", zero_point=0,
                                         stripe_depth=depth, iteration_size=iteration), w)
    size = encoded_size(w, zero_point=0, variant=v, layout="HWIO", requant=rq, stripe_depth=depth,
                        iteration_size=iteration)
    assert (size.total_bytes, size.max_stripe_bytes) == (len(enc.data), enc.max_stripe_bytes)


def test_depthwise_in_stripe_chunks_equals_whole_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Depthwise (a stream per kernel) cut into stripes gives the whole-layer bytes and decodes."""
    rng = np.random.default_rng(7)
    w = _layer("sparse", rng, (3, 3, 200, 1))
    kw = {"zero_point": 0, "variant": VARIANTS["ethos-n78-4tops-4ple"], "layout": "HWIM", "stripe_depth": 32}
    whole = encode_layer(w, **kw)  # type: ignore[arg-type]
    monkeypatch.setattr(layer_chunks, "CHUNK_WEIGHTS", 1)
    cut = encode_layer(w, **kw)  # type: ignore[arg-type]
    assert cut.data == whole.data and tuple(cut.params) == tuple(whole.params)
    back = decode_layer_full(cut, shape=w.shape, **kw)  # type: ignore[arg-type]
    assert np.array_equal(back.weights, w)


def test_decoder_refuses_corrupt_blobs() -> None:
    """Flipped bits and cut blobs give a ValueError or other weights, never another exception; the
    unary-padding and geometry checks of the batch parser fire."""
    v = VARIANTS["ethos-n78-4tops-4ple"]
    rng = np.random.default_rng(0)
    w = np.clip(np.round(rng.normal(0, 30, (3, 3, 64, 32))), -127, 127).astype(np.int8)
    w[rng.random(w.shape) < 0.5] = 0
    enc = encode_layer(w, zero_point=0, variant=v, layout="HWIO")
    args = {"shape": w.shape, "variant": v, "layout": "HWIO", "zero_point": 0}
    assert np.array_equal(decode_weights(enc, **args), w)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="inconsistent with the layer geometry"):
        decode_weights(enc.data[: len(enc.data) // 2], **args)  # type: ignore[arg-type]
    messages = []
    for _ in range(40):
        data = bytearray(enc.data)
        data[int(rng.integers(len(data)))] ^= 1 << int(rng.integers(8))
        try:
            out = decode_weights(bytes(data), **args)  # type: ignore[arg-type]
        except ValueError as exc:
            messages.append(str(exc))
        else:
            assert out.shape == w.shape
    assert "non-zero padding in a unary word" in messages
