"""The fast audit paths agree with the straightforward computations they replace.

Histogram statistics of 8-bit tensors are checked against `weight_stats` of the explicitly
zero-point-corrected int32 tensor; the hand-sized ZIP archive against `zipfile` itself; the
lazy reader against the full object-API unpack.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from modelgen import int8_conv_model

from hwopt.analysis.deflate import deflate_size, zip_size
from hwopt.analysis.histogram import histogram_stats
from hwopt.analysis.stats import weight_stats
from hwopt.format.tflite_io import read_model, serialize

CASES = [
    # (shape, out_axis, in_axis, dtype, zero points: "zero" | "one" | "per-channel" | "out-of-range")
    ((16, 3, 3, 8), 0, 3, np.int8, "zero"),
    ((16, 3, 3, 8), 0, 3, np.int8, "per-channel"),
    ((1, 3, 3, 32), 3, None, np.int8, "per-channel"),  # depthwise: channels last
    ((64, 130), 0, 1, np.int8, "one"),  # partial 2:4 group at the end of each row
    ((64, 130), 0, 1, np.uint8, "one"),
    ((64, 130), 0, 1, np.uint8, "per-channel"),
    ((4, 5, 6), 1, 2, np.int8, "per-channel"),  # channel axis in the middle
    ((300,), None, None, np.int8, "one"),
    ((8, 16), 0, 1, np.int8, "out-of-range"),
]


def _zero_points(kind: str, channels: int, dtype: type, rng: np.random.Generator) -> np.ndarray:
    lo, hi = (-128, 127) if dtype is np.int8 else (0, 255)
    if kind == "zero":
        return np.zeros(1, np.int64)
    if kind == "one":
        return np.array([rng.integers(lo, hi + 1)], np.int64)
    if kind == "out-of-range":
        zp = rng.integers(lo, hi + 1, channels).astype(np.int64)
        zp[::3] = 1000
        return zp
    return rng.integers(lo, hi + 1, channels).astype(np.int64)


@pytest.mark.parametrize(("shape", "out_axis", "in_axis", "dtype", "zp_kind"), CASES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_histogram_stats_match_corrected_stats(shape: tuple[int, ...], out_axis: int | None, in_axis: int | None,
                                               dtype: type, zp_kind: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    w = rng.integers(info.min, info.max + 1, size=shape).astype(dtype)
    channels = shape[out_axis] if out_axis is not None else 1
    zps = _zero_points(zp_kind, channels, dtype, rng)
    # Plant structure: a zero channel, many quantized zeros, a few distinct values in one channel.
    zp_full = np.broadcast_to(zps, (channels,))
    moved = np.moveaxis(w, out_axis, 0) if out_axis is not None else w.reshape(1, -1)
    if zp_full[0] <= info.max and zp_full[0] >= info.min:
        moved[0] = zp_full[0]
    if channels > 2:
        moved[1] = rng.choice(np.array([info.min, 0, 5, info.max], dtype=dtype), size=moved[1].shape)
    mask = rng.random(w.shape) < 0.4
    zshape = [1] * w.ndim
    if out_axis is not None:
        zshape[out_axis] = zp_full.size
    in_range = (zp_full >= info.min) & (zp_full <= info.max)
    fill = np.broadcast_to(np.where(in_range, zp_full, 0).astype(dtype).reshape(zshape), w.shape)
    w = np.where(mask, fill, w).astype(dtype)
    corrected = w.astype(np.int64) - zp_full.reshape(zshape)
    expected = weight_stats(corrected, out_axis, in_axis)
    assert histogram_stats(w, zps, out_axis, in_axis) == expected


@pytest.mark.parametrize("name", ["model.tflite", "ünïcode.tflite", "with\0nul.tflite", "x" * 300])
@pytest.mark.parametrize("size", [0, 1, 5000, 300_000])
def test_zip_size_is_what_zipfile_writes(name: str, size: int) -> None:
    data = np.random.default_rng(size).integers(0, 4, size, dtype=np.uint8).tobytes()
    buf = io.BytesIO()
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(info, data)
    assert deflate_size(data, name) == len(buf.getvalue())


def test_zip64_layout_is_what_zipfile_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """zipfile switches to ZIP64 records above its limit; a lowered limit shows the layout."""
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 4000)
    for size in (3000, 3900, 5000, 20000):
        data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
        buf = io.BytesIO()
        info = zipfile.ZipInfo("m.tflite", date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr(info, data)
        import zlib

        comp = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        compressed = len(comp.compress(data)) + len(comp.flush())
        assert zip_size("m.tflite", size, compressed, zip64_limit=4000) == len(buf.getvalue()), size


class TestLazyReader:
    def test_reading_unpacks_nothing(self) -> None:
        model = read_model(int8_conv_model())
        assert model.__dict__.get("_raw") is None
        assert all(t.__dict__.get("_raw") is None for t in model.subgraphs[0].tensors)
        w = model.subgraphs[0].tensors[1]
        assert w.data is not None and not w.data.flags.owndata  # a view of the file bytes
        assert np.shares_memory(w.data, np.frombuffer(model.source, np.uint8))

    def test_options_unpack_one_operator(self) -> None:
        model = read_model(int8_conv_model())
        conv = model.subgraphs[0].operators[0]
        assert conv.options.strideW == 1 and conv.options.fusedActivationFunction == 1  # RELU
        assert model.__dict__.get("_raw") is None  # the rest stays packed

    def test_edits_through_raw_survive_the_full_unpack(self) -> None:
        model = read_model(int8_conv_model())
        model.subgraphs[0].operators[0].options.strideW = 2
        model.subgraphs[0].tensors[0].raw.name = "renamed"
        again = read_model(serialize(model))
        assert again.subgraphs[0].operators[0].options.strideW == 2
        assert again.subgraphs[0].tensors[0].name == "renamed"

    def test_raw_matches_the_object_api(self) -> None:
        from hwopt._generated.tflite.Model import Model as FbModel
        from hwopt._generated.tflite.Model import ModelT

        data = int8_conv_model()
        model = read_model(data)
        full = ModelT.InitFromObj(FbModel.GetRootAs(data, 0))
        sg = model.subgraphs[0]
        for t, raw in zip(sg.tensors, full.subgraphs[0].tensors, strict=True):
            assert t.name == raw.name.decode() and t.shape == tuple(raw.shape) and t.buffer == raw.buffer
        assert model.raw.subgraphs[0].tensors[1] is sg.tensors[1].raw
        assert serialize(read_model(data)) == serialize(model)


def test_audit_without_deflate_measures_the_same_structure() -> None:
    from hwopt.engines.audit import audit_model

    data = int8_conv_model()
    full = audit_model(read_model(data), data, "m.tflite")
    lean = audit_model(read_model(data), data, "m.tflite", with_deflate=False)
    assert full.model.deflate_bytes == deflate_size(data, "m.tflite") and lean.model.deflate_bytes is None
    assert lean.layers == full.layers and lean.summary == full.summary


@pytest.mark.parametrize("process", [False, True])
def test_deflate_job_in_a_thread_or_a_child(process: bool) -> None:
    from hwopt.analysis.deflate_job import DeflateJob

    data = int8_conv_model()
    job = DeflateJob(data, "m.tflite", process=process)
    assert job.result().bytes == deflate_size(data, "m.tflite")  # a small file: exact
    assert job.result().bytes == deflate_size(data, "m.tflite")  # asking again gives the same size


def test_cli_no_deflate(tmp_path: Path) -> None:
    from conftest import run_cli_subprocess

    path = tmp_path / "m.tflite"
    data = int8_conv_model()
    path.write_bytes(data)
    full, lean = run_cli_subprocess("audit", path, "--json"), run_cli_subprocess("audit", path, "--json", "--no-deflate")
    a, b = json.loads(full.out), json.loads(lean.out)
    assert a["model"]["deflate_bytes"] == deflate_size(data, "m.tflite") and b["model"]["deflate_bytes"] is None
    assert a["layers"] == b["layers"] and full.code == lean.code == 0
    text = run_cli_subprocess("audit", path, "--no-deflate")
    assert text.code == 0 and "DEFLATE" not in text.out


def test_deflate_job_cancel_reaps_the_child() -> None:
    from hwopt.analysis.deflate_job import DeflateJob

    job = DeflateJob(np.zeros(1 << 22, np.uint8).tobytes(), process=True)
    job.cancel()
    job.cancel()  # twice is harmless
