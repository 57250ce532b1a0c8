"""`hwopt encode` taking Vela's own streams from its compile: same report as hwopt's encoder, checks that bite.

With Vela's block configurations the default encode takes each layer's streams from the
compiled model instead of encoding them again. The golden side is hwopt's own encoder (whose
streams the conformance tests hold byte-identical to Vela's); the brick-order fast paths are
checked against the loop nest written element by element.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hwopt.targets.ethos_u import mlw
from hwopt.targets.ethos_u import weight_layout as wl

MODELS = ("mlperftiny_resnet8_int8.tflite", "micro_speech_quantized.tflite",
          "derived/ic_resnet8_pruned_2of4_int8.tflite", "derived/ic_resnet8_clustered8_perchannel_int8.tflite")


def _both(path: Path, target_name: str) -> tuple[object, object]:
    from hwopt.engines.encode import encode_model
    from hwopt.format.tflite_io import read_model
    from hwopt.targets import resolve_target
    from hwopt.targets.ethos_u.vela_blocks import compile_with_db

    target = resolve_target(target_name)
    model = read_model(path)
    compiled = compile_with_db(path.read_bytes(), target)
    vela = encode_model(model, target, block_source="vela", vela_compiled=compiled)
    ours = encode_model(model, target, block_source="vela", vela_compiled=compiled, streams="hwopt")
    return vela, ours


@pytest.mark.parametrize("target", ["ethos-u55-128", "ethos-u65-512", "ethos-u85-256"])
def test_vela_streams_equal_hwopt_streams(shared_models: Path, target: str) -> None:
    taken = 0
    for name in MODELS:
        vela, ours = _both(shared_models / name, target)
        for a, b in zip(vela.layers, ours.layers, strict=True):  # type: ignore[attr-defined]
            if not a.encodable:
                continue
            assert b.stream_source == "hwopt"
            if a.vela_encoded_bytes is not None:  # Vela ran the layer on the NPU: its streams are taken
                assert a.stream_source == "vela", (name, a.op_index)
                taken += 1
            assert a._data == b._data and a.streams == b.streams, (name, a.op_index)
            assert (a.format, a.coded_weights, a.roundtrip_ok) == (b.format, b.coded_weights, True)
    assert taken >= 30  # resnet8 (10), micro_speech (2), the two resnet8 variants (10 each)


def _corrupt_vela_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    """Vela's located streams with one byte flipped inside every layer's first stream."""
    from hwopt.targets.ethos_u import vela_weights

    real = vela_weights.compiled_streams

    def corrupt(compiled: object, *, u85: bool) -> vela_weights.CompiledStreams | None:
        found = real(compiled, u85=u85)
        assert found is not None
        ro = bytearray(found.read_only)
        for layer in found.layers.values():
            off, n = layer.streams[0]
            ro[off + n // 2] ^= 0x5A  # one byte inside every layer's first stream
        return replace(found, read_only=bytes(ro))

    monkeypatch.setattr(vela_weights, "compiled_streams", corrupt)


def test_a_wrong_vela_stream_fails_the_check(shared_models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _corrupt_vela_streams(monkeypatch)
    vela, _ = _both(shared_models / "mlperftiny_resnet8_int8.tflite", "ethos-u55-128")
    taken = [la for la in vela.layers if la.stream_source == "vela"]  # type: ignore[attr-defined]
    assert taken and not any(la.roundtrip_ok for la in taken)


def test_a_wrong_vela_stream_fails_the_check_worked_out_during_the_compile(shared_models: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The default path (the checks worked out while Vela compiles, the weights not corrected again after it)
    still catches a stream that does not decode to the layer's weights."""
    from hwopt.background import Background
    from hwopt.engines import encode
    from hwopt.engines.encode import encode_model
    from hwopt.format.tflite_io import read_model
    from hwopt.targets import resolve_target
    from hwopt.targets.ethos_u import vela_weights

    path = shared_models / "mlperftiny_resnet8_int8.tflite"
    made = []
    real_expectations = vela_weights.Expectations

    def recording() -> vela_weights.Expectations:
        made.append(real_expectations())
        return made[-1]

    class Compiling(Background):  # type: ignore[type-arg]
        def done(self) -> bool:
            return False  # however fast Vela is, every check is worked out "during" the compile

    _corrupt_vela_streams(monkeypatch)
    monkeypatch.setattr(vela_weights, "Expectations", recording)
    monkeypatch.setattr(encode, "Background", Compiling)
    report = encode_model(read_model(path), resolve_target("ethos-u55-128"), block_source="vela", path=str(path))
    assert made and len(made[0]._layers) >= 10 and len(made[0]) <= 2  # worked out during the compile, then taken
    taken = [la for la in report.layers if la.stream_source == "vela"]
    assert len(taken) >= 10 and not any(la.roundtrip_ok for la in taken)
    assert not report.summary.roundtrip_ok


def test_streams_taken_from_vela_pickle_as_bytes(shared_models: Path, tmp_path: Path) -> None:
    """Vela's streams are views into its compiled model; the report still pickles, copies and emits them."""
    import copy
    import pickle

    from hwopt.engines.encode import emit, encode_model
    from hwopt.format.tflite_io import read_model
    from hwopt.targets import resolve_target

    path = shared_models / "mlperftiny_resnet8_int8.tflite"
    model = read_model(path)
    report = encode_model(model, resolve_target("ethos-u55-128"), block_source="vela", path=str(path))
    ours = encode_model(model, resolve_target("ethos-u55-128"), block_source="vela", path=str(path), streams="hwopt")
    views = [la for la in report.layers if isinstance(la._data, memoryview)]
    assert views
    for again in (pickle.loads(pickle.dumps(report)), copy.deepcopy(report)):
        for a, b in zip(report.layers, again.layers, strict=True):
            assert bytes(a._data) == b._data and type(b._data) is bytes
    emit(report, tmp_path / "vela")
    emit(ours, tmp_path / "hwopt")
    for la in report.layers:
        if la.encodable:
            name = f"sg{la.subgraph}_op{la.op_index:04d}_{la.op.lower()}.bin"
            assert (tmp_path / "vela" / name).read_bytes() == (tmp_path / "hwopt" / name).read_bytes() == bytes(la._data)


def test_a_command_stops_the_worker_once_the_compile_has_answered(shared_models: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """`keep_worker=False` stops the shared worker after Vela's compile when no stream should need Vela's
    decoder; a decode needed after all starts it again, and the report is the same either way."""
    from hwopt import isolation
    from hwopt.engines.encode import encode_model
    from hwopt.format.tflite_io import read_model
    from hwopt.targets import resolve_target
    from hwopt.targets.ethos_u import vela_weights

    if not isolation.uses_worker():
        pytest.skip("native calls run in this process (HWOPT_WORKER=inline): there is no worker to stop")
    path = shared_models / "mlperftiny_resnet8_int8.tflite"
    model, target = read_model(path), resolve_target("ethos-u55-128")
    kept = encode_model(model, target, block_source="vela", path=str(path), keep_worker=False)
    pid = isolation.worker()._proc.pid  # type: ignore[union-attr]
    # resnet8's layers are small: their streams are decoded whole, so the worker stays for the decode.
    again = encode_model(model, target, block_source="vela", path=str(path), keep_worker=False)
    assert isolation.worker()._proc is not None and isolation.worker()._proc.pid == pid

    # As if no layer needed the decoder: the worker stops after the compile, and the decode that is needed
    # after all runs in a new one.
    monkeypatch.setattr(vela_weights, "decoded_whole", lambda elements, arch: False)
    after = encode_model(model, target, block_source="vela", path=str(path), keep_worker=False)
    assert isolation.worker()._proc is not None and isolation.worker()._proc.pid != pid
    for report in (again, after):
        assert report.summary == kept.summary
        assert [(la.streams, bytes(la._data), la.roundtrip_ok) for la in report.layers] == \
               [(la.streams, bytes(la._data), la.roundtrip_ok) for la in kept.layers]
    assert kept.summary.roundtrip_ok and any(la.stream_source == "vela" for la in kept.layers)


def test_decoded_whole_names_the_layers_whose_streams_may_be_decoded() -> None:
    from hwopt.targets import resolve_target
    from hwopt.targets.ethos_u import vela_weights as vw
    from hwopt.targets.ethos_u import weights as wu

    one = wu.arch_of(resolve_target("ethos-u55-128"))  # one core: one stream per OFM-depth slice
    two = wu.arch_of(resolve_target("ethos-u65-512"))  # two cores: a stream each
    assert (one.cores, two.cores) == (1, 2)
    limit = 2 * mlw.SECTION
    assert vw.decoded_whole(limit, one) and not vw.decoded_whole(limit + 1, one)
    assert vw.decoded_whole(2 * limit, two) and not vw.decoded_whole(2 * limit + 1, two)
    assert not vw.decoded_whole(1024 * 1024, one) and not vw.decoded_whole(1024 * 1024, two)  # a 1024x1024 layer


def test_long_streams_are_checked_by_their_opening() -> None:
    from hwopt.targets.ethos_u.vela_weights import opens_like

    rng = np.random.default_rng(3)
    for zeros in (0.0, 0.6):
        w = rng.integers(-40, 41, 3 * mlw.SECTION)
        w[rng.random(w.size) < zeros] = 0
        data = mlw.encode(w)
        assert opens_like(data, w)
        other = w.copy()
        other[:100] = 77  # a different palette for the first section
        assert not opens_like(data, other)
        flipped = bytearray(data)
        flipped[3] ^= 0x10  # a palette bit
        assert not opens_like(bytes(flipped), w)


def _u55_reference(w: np.ndarray, iub: int, oub: int, ob: int, ib: int) -> list[int]:
    """Depth-first U55 brick order, one element at a time (one sub-kernel)."""
    o_n, h_n, w_n, i_n = w.shape
    flat = w.reshape(o_n, h_n * w_n, i_n)
    out = []
    for obz in range(0, o_n, ob):
        cob = min(ob, o_n - obz)
        for ibz in range(0, i_n, ib):
            for ou0 in range(0, cob, oub):
                for k in range(h_n * w_n):
                    for iu0 in range(0, ib, iub):
                        for o in range(oub):
                            for i in range(iub):
                                oz, iz = obz + ou0 + o, ibz + iu0 + i
                                out.append(int(flat[oz, k, iz]) if oz < o_n and iz < i_n else 0)
    return out


def _u85_reference(w: np.ndarray, stream: int, streams: int, ob: int, oub: int, ib: int, step: int) -> list[int]:
    """Depth-first U85 order for one weight decoder, one element at a time (one sub-kernel, stride 1)."""
    o_n, h_n, w_n, i_n = w.shape
    elems = [(y, x if y % 2 == 0 else w_n - 1 - x) for y in range(h_n) for x in range(w_n)]
    blocks = list(range(0, i_n, ib))
    out = []
    for nth, obz in enumerate(range(0, o_n, ob)):
        cob = min(ob, o_n - obz)
        for ibz in blocks if nth % 2 == 0 else blocks[::-1]:
            for ou0 in range(0, cob, oub):
                for y, x in elems:
                    for iu0 in range(0, ib, step):
                        for g in range(stream * 4, oub, 4 * streams):
                            for o in range(4):
                                for i in range(step):
                                    oz, iz = obz + ou0 + g + o, ibz + iu0 + i
                                    out.append(int(w[oz, y, x, iz]) if oz < o_n and iz < i_n else 0)
    return out


def test_depth_first_orders_equal_the_loop_nest() -> None:
    rng = np.random.default_rng(11)
    for _ in range(60):
        o, h, wd, i = (int(rng.integers(1, n)) for n in (40, 4, 4, 70))
        w = rng.integers(-255, 256, (o, h, wd, i)).astype(np.int32)
        oub, iub = int(rng.choice([1, 2, 4])), int(rng.choice([4, 8]))
        ob = oub * int(rng.integers(1, 5))
        bits = int(rng.choice([8, 16]))
        got = wl.u55_order(w, ifm_ublock=iub, ofm_ublock=oub, ofm_block=ob, traversal=wl.Traversal.DEPTH_FIRST,
                           ifm_bits=bits)
        assert got.tolist() == _u55_reference(w, iub, oub, ob, 32 if bits == 8 else 16)
        streams, oub85 = int(rng.choice([1, 2, 4])), int(rng.choice([8, 16]))
        ib, sparse = int(rng.choice([16, 32, 64])), bool(rng.integers(0, 2))
        arch = wl.EthosUArch("u85", 256, 1, 8, oub85, streams)
        cfg = wl.BlockConfig(wl.Traversal.DEPTH_FIRST, oub85 * int(rng.integers(1, 4)), None, ib, oub85)
        s = int(rng.integers(0, streams))
        got = wl.u85_order(w, arch=arch, config=cfg, stream=s, sparse=sparse)
        assert got.tolist() == _u85_reference(w, s, streams, cfg.ofm_block_depth, oub85, ib, 16 if sparse else 8)


def test_symbol_counts_from_raw_bytes_equal_corrected_counts(all_models: list[Path],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from hwopt.analysis.layers import weight_layers, zero_corrected
    from hwopt.analysis.stats import value_counts
    from hwopt.engines import encode_layer
    from hwopt.engines.encode_layer import symbol_counts
    from hwopt.format.tflite_io import read_model

    monkeypatch.setattr(encode_layer, "HIST_BLOCK", 4099)  # the byte histogram is summed over many blocks

    seen_offset = 0
    for path in all_models:
        model = read_model(path)
        if model.vela_compiled:
            continue
        for layer in weight_layers(model):
            t = layer.weights(model)
            if t.data is None or t.dtype.is_float:
                continue
            corrected = zero_corrected(model, layer)
            counts, zeros = symbol_counts(t, corrected)
            again, zeros_again = symbol_counts(t, None)  # without the caller's copy: the same counts
            assert again.tolist() == counts.tolist() and zeros_again == zeros
            # the raw-byte histogram lists the counts in byte order, not value order
            assert sorted(counts.tolist()) == sorted(value_counts(corrected).tolist()), (path.name, layer.op_index)
            assert zeros == corrected.size - np.count_nonzero(corrected), (path.name, layer.op_index)
            seen_offset += bool(t.quantization is not None and t.quantization.zero_point.any())
    assert seen_offset > 0  # uint8 models with a zero point other than 0 are among them


def test_streams_worked_out_during_the_compile_give_the_same_check(shared_models: Path) -> None:
    """Expected streams from hwopt's block plan (worked out while Vela compiles) are taken where Vela's
    configuration is the plan's, and the check and its outcome are those of working them out afterwards."""
    from hwopt.analysis.layers import weight_layers
    from hwopt.engines.encode_ethos_u import expect_u, plan_of, prepare_u
    from hwopt.format.tflite_io import read_model
    from hwopt.targets import resolve_target
    from hwopt.targets.ethos_u import vela_blocks as vb
    from hwopt.targets.ethos_u import vela_weights as vw
    from hwopt.targets.ethos_u import weights as wu
    from hwopt.targets.ethos_u.block_plan import search_plans

    path = shared_models / "mlperftiny_resnet8_int8.tflite"
    target = resolve_target("ethos-u55-128")
    arch = wu.arch_of(target)
    model = read_model(path)
    compiled = vb.compile_with_db(path.read_bytes(), target)
    infos = dict(vb.configs_from_compiled(compiled)[0])
    located = vw.compiled_streams(compiled, u85=False)
    assert located is not None
    layers = [la for la in weight_layers(model) if la.op_index in infos and la.op_index in located.layers]
    expected = vw.Expectations()
    for la, plan in ((la, search_plans(model, target, [la]).get((la.subgraph, la.op_index))) for la in layers):
        assert plan is not None
        expect_u(la, model, arch, plan, expected)
    before = len(expected)
    assert before >= len(layers)
    later, sooner = vw.PendingDecodes(), vw.PendingDecodes()
    from_expected = 0
    for la in layers:
        parts = located.layers[la.op_index].data(located.read_only)
        plan = plan_of(infos[la.op_index])
        a = prepare_u(la, model, arch, plan, parts, False, later)
        known = len(expected)
        b = prepare_u(la, model, arch, plan, parts, False, sooner, expected=expected)
        assert a.encs is not None and b.encs is not None
        assert a.corrected is not None
        # Streams checked against those worked out during the compile need no second copy of the weights.
        if len(expected) < known:
            from_expected += 1
            assert b.corrected is None and known - len(expected) == len(b.parts)
        else:
            assert b.corrected is not None and np.array_equal(a.corrected, b.corrected)
        assert [p[0].shape for p in a.parts] == [p[0].shape for p in b.parts]
        assert [(e.streams, e.roundtrip_ok, e.default_bytes) for e in a.encs] == \
               [(e.streams, e.roundtrip_ok, e.default_bytes) for e in b.encs]
        assert all(e.roundtrip_ok for e in b.encs)
    assert later.items == sooner.items and not sooner.failed()
    assert before - len(expected) >= len(layers) // 2  # most of Vela's configurations are the plan's
    assert from_expected >= len(layers) // 2

    # A configuration that differs from the plan's finds nothing: its streams are worked out afresh.
    la = layers[0]
    job = prepare_u(la, model, arch, plan_of(infos[la.op_index]))
    w, config, _, dilation = job.parts[0]
    other = replace(config, ofm_block_depth=config.ofm_block_depth * 2)
    assert expected.take((la.subgraph, la.op_index), 0, len(job.parts), w, other, dilation, job.ifm_bits) is None
