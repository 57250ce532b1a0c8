"""Reader/writer: deterministic atomic output, the >2 GB layout, LiteRT round trips, the example model."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from conftest import ROOT, model_id, shared_model_paths
from modelgen import int8_conv_model, pack

from hwopt._generated.tflite.Model import Model as FbModel
from hwopt._generated.tflite.Model import ModelT
from hwopt.errors import OutputError
from hwopt.format.tflite_io import read_model, serialize, write_model

EXAMPLE = ROOT / "hwopt" / "example" / "example_int8.tflite"


def _random_inputs(interp: Any, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for d in interp.get_input_details():
        dt = np.dtype(d["dtype"])
        if np.issubdtype(dt, np.integer):
            info = np.iinfo(dt)
            out.append(rng.integers(info.min, info.max, d["shape"], endpoint=True).astype(dt))
        else:
            out.append(rng.standard_normal(d["shape"]).astype(dt))
    return out


def run_litert(model: bytes, inputs: list[np.ndarray] | None = None, seed: int = 0) -> list[np.ndarray]:
    """Outputs of one LiteRT inference (seeded random inputs unless given)."""
    interp = Interpreter(model_content=model, num_threads=1)
    interp.allocate_tensors()
    xs = inputs if inputs is not None else _random_inputs(interp, seed)
    for d, x in zip(interp.get_input_details(), xs, strict=True):
        interp.set_tensor(d["index"], x)
    interp.invoke()
    return [interp.get_tensor(d["index"]).copy() for d in interp.get_output_details()]


def external_layout(data: bytes) -> bytes:
    """Rewrite a model by hand into the >2 GB layout: buffer data after the flatbuffer at offset/size.

    Packs twice (placeholder offsets first: the fields are fixed-width, so the size holds),
    then appends each buffer 16-byte aligned, as the TFLite converter does for big models.
    """
    raw = ModelT.InitFromObj(FbModel.GetRootAs(data, 0))
    payloads = {i: bytes(np.asarray(b.data, np.uint8)) for i, b in enumerate(raw.buffers) if b.data is not None
                and len(b.data)}

    def with_offsets(offsets: dict[int, int]) -> bytes:
        for i, b in enumerate(raw.buffers):
            if i in payloads:
                b.data, b.offset, b.size = None, offsets[i], len(payloads[i])
        return pack(raw)

    head = len(with_offsets(dict.fromkeys(payloads, 2)))
    offsets, pos = {}, head + (-head) % 16
    for i, p in payloads.items():
        offsets[i] = pos
        pos += len(p) + (-len(p)) % 16
    out = bytearray(with_offsets(offsets))
    assert len(out) == head
    for i, p in payloads.items():
        out.extend(b"\0" * (offsets[i] - len(out)))
        out.extend(p)
    return bytes(out)


class TestWriteModel:
    def test_same_input_same_bytes(self, tmp_path: Path) -> None:
        src = tmp_path / "in.tflite"
        src.write_bytes(int8_conv_model(seed=5))
        a, b = tmp_path / "a.tflite", tmp_path / "b.tflite"
        write_model(read_model(src), a)
        write_model(read_model(src), b)
        assert a.read_bytes() == b.read_bytes()
        # A written model written again is a fixed point.
        assert serialize(read_model(a)) == a.read_bytes()

    def test_buffers_are_16_byte_aligned(self) -> None:
        data = serialize(read_model(int8_conv_model()))
        fb = FbModel.GetRootAs(data, 0)
        for i in range(fb.BuffersLength()):
            buf = fb.Buffers(i)
            if buf.DataLength():
                start = buf._tab.Vector(buf._tab.Offset(4))
                assert start % 16 == 0

    def test_refuses_to_overwrite_input(self, tmp_path: Path) -> None:
        src = tmp_path / "in.tflite"
        original = int8_conv_model()
        src.write_bytes(original)
        model = read_model(src)
        for target in (src, tmp_path / "sub" / ".." / "in.tflite"):
            (tmp_path / "sub").mkdir(exist_ok=True)
            with pytest.raises(OutputError, match="refusing to overwrite"):
                write_model(model, target)
        link = tmp_path / "link.tflite"
        link.symlink_to(src)
        with pytest.raises(OutputError, match="refusing to overwrite"):
            write_model(model, link)
        assert src.read_bytes() == original

    def test_protect_extra_paths(self, tmp_path: Path) -> None:
        other = tmp_path / "other.tflite"
        other.write_bytes(b"keep")
        with pytest.raises(OutputError):
            write_model(read_model(int8_conv_model()), other, protect=(other,))
        assert other.read_bytes() == b"keep"

    def test_failed_rename_leaves_nothing(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        model = read_model(int8_conv_model())
        target = tmp_path / "out.tflite"

        def boom(src: Any, dst: Any) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "replace", boom)
        with pytest.raises(OutputError, match="No space left"):
            write_model(model, target)
        assert list(tmp_path.iterdir()) == []

    def test_failed_write_keeps_previous_file(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        target = tmp_path / "out.tflite"
        target.write_bytes(b"previous")

        def boom(fd: int) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(os, "fsync", boom)
        with pytest.raises(OutputError):
            write_model(read_model(int8_conv_model()), target)
        assert target.read_bytes() == b"previous"
        assert [p.name for p in tmp_path.iterdir()] == ["out.tflite"]

    def test_missing_directory(self, tmp_path: Path) -> None:
        with pytest.raises(OutputError, match="does not exist"):
            write_model(read_model(int8_conv_model()), tmp_path / "nope" / "out.tflite")


class TestExternalBuffers:
    def test_read_write_run(self, tmp_path: Path) -> None:
        normal = int8_conv_model(seed=11)
        ext = external_layout(normal)
        model = read_model(ext)
        assert model.external_buffers
        ref = read_model(normal)
        for t_ext, t_ref in zip(model.subgraphs[0].tensors, ref.subgraphs[0].tensors, strict=True):
            if t_ref.data is None:
                assert t_ext.data is None
            else:
                np.testing.assert_array_equal(t_ext.data, t_ref.data)
        written = serialize(model)
        again = read_model(written)
        assert again.external_buffers
        np.testing.assert_array_equal(again.subgraphs[0].tensors[1].data, ref.subgraphs[0].tensors[1].data)
        # LiteRT reads offset buffers (the large-model layout): all three run the same.
        inputs = _random_inputs(_interp(normal), 3)
        expected = run_litert(normal, inputs)
        for data in (ext, written):
            for got, want in zip(run_litert(data, inputs), expected, strict=True):
                np.testing.assert_array_equal(got, want)

    def test_new_values_stay_external(self) -> None:
        model = read_model(external_layout(int8_conv_model()))
        sg = model.subgraphs[0]
        model.set_tensor_data(sg, sg.tensors[1], np.zeros(sg.tensors[1].shape, np.int8))
        again = read_model(serialize(model))
        assert again.external_buffers
        assert again.subgraphs[0].tensors[1].data is not None and not again.subgraphs[0].tensors[1].data.any()


def _interp(data: bytes) -> Any:
    interp = Interpreter(model_content=data)
    interp.allocate_tensors()
    return interp


class TestExampleModel:
    def _builder(self) -> Any:
        spec = importlib.util.spec_from_file_location("make_example_model", ROOT / "tools" / "make_example_model.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module

    def test_script_reproduces_committed_bytes(self) -> None:
        assert self._builder().build() == EXAMPLE.read_bytes()

    def test_litert_runs_it(self) -> None:
        data = EXAMPLE.read_bytes()
        (probs,) = run_litert(data, seed=1)
        assert probs.shape == (1, 10) and probs.dtype == np.int8
        # Softmax output (scale 1/256, zero point -128) sums to about 1.
        assert abs(float((probs.astype(np.int32) + 128).sum()) / 256 - 1.0) < 0.05
        interp = _interp(data)
        assert list(interp.get_signature_list()) == ["serving_default"]

    def test_structure(self) -> None:
        model = read_model(EXAMPLE)
        assert [op.op for op in model.subgraphs[0].operators] == [
            "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "CONV_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"]
        assert model.metadata["min_runtime_version"].rstrip(b"\0") == b"1.14.0"
        assert model.signature_keys == ("serving_default",)
        for sg in model.subgraphs:
            for t in sg.tensors:
                if t.data is not None and t.name.endswith("/weights"):
                    assert t.quantization is not None and t.quantization.per_channel
                    assert int(np.count_nonzero(t.data == 0)) * 2 == t.data.size  # exactly 50% pruned


@pytest.mark.parametrize("path", shared_model_paths(), ids=model_id)
def test_litert_round_trip(path: Path, tmp_path: Path) -> None:
    """read -> write gives a model LiteRT runs with bit-identical outputs; metadata and signatures kept.

    Skipped where LiteRT refuses the original file itself (person_detect: bias
    quantized_dimension 3 on 1-D tensors; person_detect_vela: no kernel for the ethos-u op).
    """
    original = path.read_bytes()
    try:
        run_litert(original)
    except (RuntimeError, ValueError) as exc:
        pytest.skip(f"LiteRT refuses the original: {str(exc).splitlines()[0][:100]}")
    model = read_model(path)
    out = write_model(model, tmp_path / "rt.tflite")
    written = out.read_bytes()
    again = read_model(written)
    assert again.metadata == model.metadata
    assert again.signature_keys == model.signature_keys
    assert _interp(written).get_signature_list() == _interp(original).get_signature_list()
    for seed in (0, 1):
        for got, want in zip(run_litert(written, seed=seed), run_litert(original, seed=seed), strict=True):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)


def test_round_trip_keeps_every_constant(shared_models: Path) -> None:
    """Every constant tensor of every shared model reads back byte-identical after a write."""
    for path in shared_model_paths():
        model = read_model(path)
        again = read_model(serialize(read_model(path)))
        for sg, sg2 in zip(model.subgraphs, again.subgraphs, strict=True):
            assert [t.name for t in sg.tensors] == [t.name for t in sg2.tensors]
            for t, t2 in zip(sg.tensors, sg2.tensors, strict=True):
                assert t.shape == t2.shape and t.dtype == t2.dtype
                if t.data is not None:
                    assert t2.data is not None and t.data.tobytes() == t2.data.tobytes(), (path.name, t.name)
