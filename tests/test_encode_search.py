"""The default Ethos-U encode (block configurations from hwopt's block searches, no Vela compile) writes
Vela's own weight streams: golden bytes from Vela's compiled model (`encode --blocks vela`)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ("mlperftiny_resnet8_int8.tflite", "micro_speech_quantized.tflite", "person_detect.tflite",
          "derived/ic_resnet8_clustered8_perchannel_int8.tflite")
GENERATED = (14, 74, 21, 105)  # depthwise channel multipliers and transposed convolutions


def _tool():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("check_encode_search", ROOT / "tools" / "check_encode_search.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, mod)  # its dataclasses look their module up by name
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("config", ["ethos-u55-128", "ethos-u65-512", "ethos-u85-256"])
def test_default_encode_bytes_equal_vela_streams(shared_models: Path, config: str) -> None:
    from hwopt.targets import resolve_target
    from hwopt.testing.generator import generate

    target = resolve_target(config)
    tool = _tool()
    items = [(n, (shared_models / n).read_bytes()) for n in SHARED]
    items += [(g.name, g.data) for g in map(generate, GENERATED)]
    layers = same = 0
    for name, data in items:
        for r in tool.compare(data, target):
            layers += 1
            same += r.same
            if r.vela_sliced:  # Vela buffered the weights in OFM-depth slices: the record must say it may
                assert r.noted, (name, r)
            else:
                assert r.same, (name, r)
    assert layers >= 55 and same >= 0.85 * layers  # the misses are layers Vela sliced


def test_the_slice_note_is_absent_where_nothing_is_buffered() -> None:
    """Weights already in the staging memory (Sram_Only) are never buffered: one stream per core, no note."""
    import numpy as np

    from hwopt.format.tflite_io import read_model
    from hwopt.targets import resolve_target
    from hwopt.targets.ethos_u.block_plan import SLICE_NOTE, search_plans
    from hwopt.testing.generator import generate

    model = read_model(generate(14).data)
    flash = search_plans(model, resolve_target("ethos-u55-128"))
    sram = search_plans(model, resolve_target("ethos-u55-128", memory_mode="Sram_Only"))
    assert flash.keys() == sram.keys() and flash
    assert all(p.note is None for p in sram.values())
    deep = [k for k, p in flash.items() if p.note == SLICE_NOTE]
    depths = [model.subgraphs[k[0]].tensor(model.subgraphs[k[0]].operators[k[1]].outputs[0]).shape[-1] for k in deep]
    assert all(np.asarray(depths) > 16)


@pytest.mark.parametrize("config", ["ethos-u55-128", "ethos-u85-256"])
def test_layers_encoded_in_the_worker_are_the_same(shared_models: Path, config: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A large model's layers are shared between this process and the isolation worker; the report is
    the same, byte for byte, as when this process encodes them all."""
    from hwopt import isolation
    from hwopt.engines import encode as engine
    from hwopt.engines.encode_ethos_u import WORKER_ENCODE
    from hwopt.format.tflite_io import read_model
    from hwopt.records import dumps
    from hwopt.targets import resolve_target

    model = read_model(shared_models / "mlperftiny_resnet8_int8.tflite")
    target = resolve_target(config)
    alone = engine.encode_model(model, target)
    calls: list[str] = []
    real = isolation.Worker.call

    def counting(self: isolation.Worker, where: str, *args: object, library: str, **kwargs: object) -> object:
        calls.append(where)
        return real(self, where, *args, library=library, **kwargs)

    monkeypatch.setattr(isolation.Worker, "call", counting)
    monkeypatch.setattr(engine, "OFFLOAD_MIN_WEIGHTS", 0)
    shared = engine.encode_model(model, target)
    assert calls.count(WORKER_ENCODE) >= 1
    assert [la._data for la in shared.layers] == [la._data for la in alone.layers]
    assert dumps(shared) == dumps(alone)


def test_u85_fast_weights_where_vela_s_default_strategy_takes_them(shared_models: Path) -> None:
    """Vela (Performance strategy) takes the fast format where its decode time is shorter, not where it
    is smaller: on u85-1024 it keeps the standard format for these layers although FWD is smaller."""
    from hwopt.targets import resolve_target

    target = resolve_target("ethos-u85-1024")
    tool = _tool()
    checked = 0
    for name in ("ds_cnn_s_quantized_int16.tflite", "rnnoise_INT8.tflite"):
        for r in tool.compare((shared_models / name).read_bytes(), target):
            assert r.fmt[0] == r.fmt[1], (name, r)
            assert r.same or r.vela_sliced, (name, r)
            checked += 1
    assert checked >= 15
