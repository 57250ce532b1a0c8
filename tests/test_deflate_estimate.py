"""The sampled DEFLATE size stays within its stated bound of what `zipfile` really writes.

Every exact figure here comes from `zipfile` itself (a ZIP_DEFLATED archive built in memory),
never from hwopt's own exact path. Models: every shared model, the fully connected and conv
ladders of the scale benchmark, and generated models whose layers differ in sparsity and
clustering (the estimator's parameters were not chosen on these).
"""

from __future__ import annotations

import io
import itertools
import json
import os
import signal
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, model_id, run_cli_subprocess, shared_model_paths
from modelgen import ModelBuilder, int8_conv_model, quantization

from hwopt.analysis import deflate_job
from hwopt.analysis.deflate import (
    EXACT_LIMIT,
    DeflateMethod,
    buffer_regions,
    measure_deflate,
    sample_plan,
    sampled_deflated_bytes,
    zip_size,
)
from hwopt.analysis.deflate_job import DeflateJob
from hwopt.format.reader import read_model


def zipfile_size(data: bytes, name: str) -> int:
    """Bytes of the archive `zipfile` writes for the file: TFMOT's figure, computed independently."""
    buf = io.BytesIO()
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(info, data)
    return len(buf.getvalue())


def mixed_model(seed: int, layers: int = 12, width: int = 512) -> bytes:
    """FULLY_CONNECTED layers that compress differently: sparsity 0-90 %, 4 clusters to unclustered."""
    rng = np.random.default_rng(seed)
    mb = ModelBuilder()
    sg = mb.subgraph()
    x = first = sg.tensor("x", (1, width), quant=quantization(0.05))
    for i in range(layers):
        values = int(rng.choice([4, 16, 64, 255]))
        palette = rng.choice(np.arange(-127, 128), size=values, replace=False).astype(np.int8)
        w = palette[rng.integers(0, values, (width, width))]
        w[rng.random(w.shape) < rng.uniform(0.0, 0.9)] = 0
        wt = sg.tensor(f"w{i}", (width, width), data=w, quant=quantization(0.01))
        b = sg.tensor(f"b{i}", (width,), "int32", data=rng.integers(-900, 900, width).astype(np.int32),
                      quant=quantization(0.0005))
        y = sg.tensor(f"y{i}", (1, width), quant=quantization(0.05))
        sg.op("FULLY_CONNECTED", [x, wt, b], [y])
        x = y
    sg.io([first], [x])
    return mb.build()


def ladder_models() -> list[tuple[str, bytes]]:
    sys.path.insert(0, str(ROOT / "tools"))
    from scale_models import conv_model, fc_model  # the scale benchmark's own ladder

    return [("fc-2", fc_model(2)), ("conv-4", conv_model(4))]


def assert_within_bound(data: bytes, name: str) -> None:
    size = measure_deflate(data, name)
    exact = zipfile_size(data, name)
    if size.method is DeflateMethod.EXACT:
        assert size.bytes == exact and size.max_error == 0.0
    else:
        assert len(data) > EXACT_LIMIT and 0.0 < size.max_error < 0.05
        assert abs(size.bytes - exact) <= size.max_error * size.bytes, (size, exact)


@pytest.mark.parametrize("path", shared_model_paths(), ids=model_id)
def test_bound_holds_on_shared_models(path: Path) -> None:
    data = path.read_bytes()
    assert_within_bound(data, path.name)
    # Forced on a smaller sample, so the smaller models are estimated too.
    estimate = sampled_deflated_bytes(data, blocks=8)
    if estimate is not None:
        stream, bound = estimate
        exact = zipfile_size(data, path.name)
        assert abs(zip_size(path.name, len(data), stream) - exact) <= bound, (stream, bound, exact)


@pytest.mark.parametrize("seed", [11, 12])
def test_bound_holds_on_mixed_layers(seed: int) -> None:
    data = mixed_model(seed)
    size = measure_deflate(data, "m.tflite")
    assert size.method is DeflateMethod.SAMPLED
    assert_within_bound(data, "m.tflite")


def test_bound_holds_on_the_scale_ladder() -> None:
    for name, data in ladder_models():
        size = measure_deflate(data, f"{name}.tflite")
        assert size.method is DeflateMethod.SAMPLED, name
        assert_within_bound(data, f"{name}.tflite")


def test_small_files_and_exact_requests_are_exact() -> None:
    data = mixed_model(13)
    assert len(data) > EXACT_LIMIT
    exact = measure_deflate(data, "m.tflite", exact=True)
    assert exact.method is DeflateMethod.EXACT and exact.bytes == zipfile_size(data, "m.tflite")
    small = int8_conv_model()
    assert measure_deflate(small, "s.tflite").method is DeflateMethod.EXACT


def test_the_estimate_is_deterministic() -> None:
    data = mixed_model(14)
    assert measure_deflate(data, "m.tflite") == measure_deflate(data, "m.tflite")


def test_buffer_regions_are_the_readers_constant_buffers() -> None:
    data = mixed_model(15, layers=4)
    model = read_model(data)
    base = np.frombuffer(data, np.uint8).ctypes.data
    expected = sorted((t.data.ctypes.data - base, t.data.ctypes.data - base + t.data.nbytes)
                      for t in model.subgraphs[0].tensors if t.data is not None and t.data.nbytes >= 1 << 15)
    assert buffer_regions(data) == expected and len(expected) == 4


@pytest.mark.parametrize("junk", [b"", b"\xff" * 7, bytes(range(256)) * 9000,
                                  np.random.default_rng(3).integers(0, 256, 3 << 20, dtype=np.uint8).tobytes()])
def test_not_a_model_is_compressed_exactly(junk: bytes) -> None:
    """Bytes that are no readable flatbuffer have no buffers to sample: the exact pass, never an error."""
    assert buffer_regions(junk) == []
    size = measure_deflate(junk, "j.tflite")
    assert size.method is DeflateMethod.EXACT and size.bytes == zipfile_size(junk, "j.tflite")


def test_truncated_model_gives_no_regions_beyond_the_file() -> None:
    data = mixed_model(16, layers=4)
    for cut in (len(data) // 3, len(data) // 2, len(data) - 100):
        assert all(0 <= a < b <= cut for a, b in buffer_regions(data[:cut]))


@pytest.mark.parametrize("process", [False, True])
def test_job_in_a_thread_or_a_child_gives_the_same_figure(process: bool) -> None:
    data = mixed_model(17)
    job = DeflateJob(data, "m.tflite", process=process)
    assert job.result() == measure_deflate(data, "m.tflite") == job.result()
    exact = DeflateJob(data, "m.tflite", process=process, exact=True).result()
    assert exact.method is DeflateMethod.EXACT and exact.bytes == zipfile_size(data, "m.tflite")


@pytest.mark.parametrize("child", ["stopped", "killed"])
def test_caller_completes_a_sample_the_child_has_not_finished(child: str) -> None:
    """The caller compresses the pieces a stalled or dead child never reported: the same figure."""
    data = mixed_model(19)
    expected = measure_deflate(data, "m.tflite")
    assert expected.method is DeflateMethod.SAMPLED
    job = DeflateJob(data, "m.tflite", process=True)
    forked = job._child
    assert forked is not None
    os.kill(forked.pid, signal.SIGSTOP if child == "stopped" else signal.SIGKILL)
    assert job.result() == expected
    assert job._child is None and forked.fd < 0  # reaped
    with pytest.raises(ChildProcessError):
        os.waitpid(forked.pid, os.WNOHANG)


def test_caller_and_child_share_the_pieces() -> None:
    """A caller that asks at once compresses some pieces itself while the child does the rest."""
    data = mixed_model(20)
    expected = measure_deflate(data, "m.tflite")
    computed: list[int] = []
    original = deflate_job.piece_bytes

    def counted(view: memoryview, start: int, end: int) -> int:
        computed.append(start)
        return original(view, start, end)

    job = DeflateJob(data, "m.tflite", process=True)
    try:
        deflate_job.piece_bytes = counted  # the caller's own pieces (the child forked with the original)
        assert job.result() == expected
    finally:
        deflate_job.piece_bytes = original
    plan = sample_plan(data)
    assert plan is not None and computed  # the caller took pieces, from the last one down
    assert computed == [start for start, _ in plan.pieces][::-1][: len(computed)]


def test_cli_forks_the_compressing_child_before_the_heavy_modules() -> None:
    """The audit's child is forked with only the light DEFLATE arithmetic loaded: no dataclasses
    (and so no inspect), no numpy, no audit engine; the records come after the fork."""
    import subprocess

    code = ("import sys\nfrom hwopt.analysis import deflate_core\nfrom hwopt.cli import build_parser\n"
            "import hwopt.cli.run_audit\n"
            "print(' '.join(sorted(m for m in sys.modules if m in ('dataclasses', 'inspect', 'numpy', "
            "'hwopt.analysis.deflate', 'hwopt.engines.audit', 'hwopt.records'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert loaded.split() == []


def test_cli_reports_method_and_bound(tmp_path: Path) -> None:
    path = tmp_path / "m.tflite"
    data = mixed_model(18)
    path.write_bytes(data)
    sampled = run_cli_subprocess("audit", path, "--json")
    exact = run_cli_subprocess("audit", path, "--json", "--exact-deflate")
    a, b = json.loads(sampled.out)["model"], json.loads(exact.out)["model"]
    assert a["deflate"]["method"] == "sampled" and a["deflate_bytes"] == a["deflate"]["bytes"]
    assert abs(a["deflate_bytes"] - zipfile_size(data, "m.tflite")) <= a["deflate"]["max_error"] * a["deflate_bytes"]
    assert b["deflate"] == {"bytes": zipfile_size(data, "m.tflite"), "method": "exact", "max_error": 0.0}
    assert b["deflate_bytes"] == b["deflate"]["bytes"]
    text = run_cli_subprocess("audit", path)
    assert text.code == 0 and "(sampled, within " in text.out
    both = run_cli_subprocess("audit", path, "--no-deflate", "--exact-deflate")
    assert both.code == 2 and both.err.startswith("hwopt: error:") and len(both.err.splitlines()) == 1


def test_buffer_regions_survive_mutated_models() -> None:
    """Any byte changed or cut anywhere: regions stay inside the file, sorted and disjoint, or there are none."""
    data = bytearray(mixed_model(19, layers=3, width=128))
    rng = np.random.default_rng(19)
    for _ in range(300):
        mutated = bytearray(data)
        for at in rng.integers(0, len(mutated), int(rng.integers(1, 8))):
            mutated[at] = int(rng.integers(0, 256))
        cut = bytes(mutated[: int(rng.integers(len(mutated) // 2, len(mutated) + 1))])
        regions = buffer_regions(cut, 1)
        assert all(0 <= a < b <= len(cut) for a, b in regions)
        assert all(b <= c for (_, b), (c, _) in itertools.pairwise(regions))
