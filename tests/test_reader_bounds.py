"""The reader's resource bounds: declared sizes are checked against the file before anything is allocated.

Each crafted model is the minimal form of a hostile kind: a few KB declaring a huge dense
"sparse" tensor, many subgraphs repeating one sparse tensor, tables aliasing one shape
vector, a device instead of a file. The peak memory of a whole `hwopt` process on them is
measured (os.wait4) against 20x the file plus a fixed interpreter overhead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
from modelgen import ModelBuilder, quantization

from hwopt._generated.tflite import Buffer as FbBuffer
from hwopt._generated.tflite import Model as FbModel
from hwopt._generated.tflite import OperatorCode as FbOpCode
from hwopt._generated.tflite import SubGraph as FbSubGraph
from hwopt._generated.tflite import Tensor as FbTensor
from hwopt._generated.tflite.DimensionMetadata import DimensionMetadataT
from hwopt._generated.tflite.DimensionType import DimensionType
from hwopt._generated.tflite.SparsityParameters import SparsityParametersT
from hwopt.errors import ModelFormatError
from hwopt.format.reader import DENSIFY_FLOOR, read_model

ROOT = Path(__file__).resolve().parent.parent
FIXED_OVERHEAD = 200 << 20  # an interpreter with numpy and hwopt imported, and its allocator slack


def _all_dense_sparsity(rows: int, cols: int) -> SparsityParametersT:
    """SparsityParameters whose every level is DENSE: the dense size is declared, never stored."""
    sp = SparsityParametersT()
    sp.traversalOrder = [0, 1]
    d0, d1 = DimensionMetadataT(), DimensionMetadataT()
    d0.format, d0.denseSize = DimensionType.DENSE, rows
    d1.format, d1.denseSize = DimensionType.DENSE, cols
    sp.dimMetadata = [d0, d1]
    return sp


def huge_dense_claim() -> bytes:
    """A ~47 KB file whose FULLY_CONNECTED weights claim to be 32768 x 32768 (1 GiB) dense."""
    mb = ModelBuilder()
    sg = mb.subgraph()
    x = sg.tensor("x", (1, 32768), quant=quantization(0.1))
    w = sg.tensor("w", (32768, 32768), data=np.ones(47 * 1024, np.int8), quant=quantization(0.05),
                  sparsity=_all_dense_sparsity(32768, 32768))
    y = sg.tensor("y", (1, 32768), quant=quantization(0.2))
    sg.op("FULLY_CONNECTED", [x, w, -1], [y])
    sg.io([x], [y])
    return mb.build()


def repeated_sparse_subgraphs(count: int = 200, side: int = 2048) -> bytes:
    """`count` subgraphs each holding the same small sparse tensor that densifies to side^2 bytes."""
    mb = ModelBuilder()
    values = np.ones(side * side, np.int8)  # all-dense levels: the values are stored once, in one buffer
    buf = mb.buffer(values)
    for i in range(count):
        sg = mb.subgraph(f"g{i}")
        x = sg.tensor("x", (1, side), quant=quantization(0.1))
        w = sg.tensor("w", (side, side), buffer=buf, quant=quantization(0.05), sparsity=_all_dense_sparsity(side, side))
        y = sg.tensor("y", (1, side), quant=quantization(0.2))
        sg.op("FULLY_CONNECTED", [x, w, -1], [y])
        sg.io([x], [y])
    return mb.build()


def aliased_shape_vectors(tensors: int = 20000, rank: int = 2000) -> bytes:
    """One subgraph whose tensors all point at one shape vector of `rank` ones (shared, stored once)."""
    b = flatbuffers.Builder(1 << 16)
    FbTensor.TensorStartShapeVector(b, rank)
    for _ in range(rank):
        b.PrependInt32(1)
    shape = b.EndVector()
    FbTensor.TensorStart(b)
    FbTensor.TensorAddShape(b, shape)
    FbTensor.TensorAddType(b, 9)
    tensor = FbTensor.TensorEnd(b)
    FbSubGraph.SubGraphStartTensorsVector(b, tensors)
    for _ in range(tensors):
        b.PrependUOffsetTRelative(tensor)
    tensor_vec = b.EndVector()
    FbSubGraph.SubGraphStart(b)
    FbSubGraph.SubGraphAddTensors(b, tensor_vec)
    sg = FbSubGraph.SubGraphEnd(b)
    FbBuffer.BufferStart(b)
    buf = FbBuffer.BufferEnd(b)
    FbOpCode.OperatorCodeStart(b)
    code = FbOpCode.OperatorCodeEnd(b)
    vecs = []
    for items in ((sg,), (buf,), (code,)):
        b.StartVector(4, len(items), 4)
        for it in items:
            b.PrependUOffsetTRelative(it)
        vecs.append(b.EndVector())
    FbModel.ModelStart(b)
    FbModel.ModelAddVersion(b, 3)
    FbModel.ModelAddSubgraphs(b, vecs[0])
    FbModel.ModelAddBuffers(b, vecs[1])
    FbModel.ModelAddOperatorCodes(b, vecs[2])
    b.Finish(FbModel.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


# ru_maxrss survives exec: a child forked from this (large) test process would report the
# parent's size, so a small launcher process forks the command and reports its usage.
_LAUNCHER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
err = proc.stderr.read()
_, status, usage = os.wait4(proc.pid, 0)
sys.stderr.buffer.write(err)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024)
"""


def peak_rss(argv: list[str], timeout: float = 120.0) -> tuple[int, int, str]:
    """(exit code, peak resident bytes, stderr) of one whole process."""
    proc = subprocess.run([sys.executable, "-c", _LAUNCHER, *argv], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, check=True)
    code, rss = (int(v) for v in proc.stdout.split())
    return code, rss, proc.stderr


class TestCraftedModels:
    def test_huge_dense_claim_is_refused_before_allocating(self) -> None:
        data = huge_dense_claim()
        assert len(data) < 64 * 1024
        start = time.perf_counter()
        with pytest.raises(ModelFormatError, match="dense"):
            read_model(data)
        assert time.perf_counter() - start < 5.0  # refused from the declaration, not after filling 1 GiB

    def test_repeated_sparse_subgraphs_are_bounded(self) -> None:
        data = repeated_sparse_subgraphs()
        dense_total = 200 * 2048 * 2048
        assert dense_total > 4 * len(data) + DENSIFY_FLOOR  # the bound must be what stops it
        with pytest.raises(ModelFormatError, match="dense"):
            read_model(data)

    def test_a_few_repeats_still_read(self) -> None:
        model = read_model(repeated_sparse_subgraphs(count=3, side=64))
        assert len(model.subgraphs) == 3
        for sg in model.subgraphs:
            t = sg.tensors[1]
            assert t.sparse and t.data is not None and t.data.shape == (64, 64) and int(t.data.sum()) == 64 * 64

    def test_aliased_tables_are_refused(self) -> None:
        data = aliased_shape_vectors()
        assert len(data) < 200 * 1024  # 20000 tensors x 2000 dims declared in a few KB
        with pytest.raises(ModelFormatError, match="alias"):
            read_model(data)


class TestInputFiles:
    @pytest.mark.parametrize("command", [["audit"], ["compile", "--target", "ethos-u55"],
                                         ["encode", "--target", "ethos-u55-128"]])
    def test_device_is_refused_at_once(self, command: list[str]) -> None:
        if not Path("/dev/zero").exists():
            pytest.skip("no /dev/zero on this system")
        start = time.perf_counter()
        code, rss, err = peak_rss([sys.executable, "-m", "hwopt", *command, "/dev/zero"])
        assert code == 2 and err.splitlines()[-1].startswith("hwopt: error: not a regular file"), err
        assert time.perf_counter() - start < 30 and rss < FIXED_OVERHEAD

    def test_size_limit(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        path = tmp_path / "big.tflite"
        path.write_bytes(b"\0" * 4096)
        monkeypatch.setenv("HWOPT_MAX_MODEL_BYTES", "1000")
        with pytest.raises(ModelFormatError, match="input limit"):
            read_model(path)

    def test_fifo_is_refused(self, tmp_path: Path) -> None:
        fifo = tmp_path / "pipe.tflite"
        os.mkfifo(fifo)
        with pytest.raises(ModelFormatError, match="not a regular file"):
            read_model(fifo)


@pytest.mark.parametrize("make", [huge_dense_claim, repeated_sparse_subgraphs, aliased_shape_vectors],
                         ids=["huge-dense-claim", "repeated-sparse-subgraphs", "aliased-shapes"])
@pytest.mark.parametrize("command", [["audit", "--json"], ["estimate", "--target", "ethos-u55-128",
                                                           "--engine", "analytic", "--json"]],
                         ids=["audit", "estimate"])
def test_peak_memory_of_whole_commands(make: object, command: list[str], tmp_path: Path) -> None:
    data = make()  # type: ignore[operator]
    path = tmp_path / "crafted.tflite"
    path.write_bytes(data)
    code, rss, err = peak_rss([sys.executable, "-m", "hwopt", command[0], str(path), *command[1:]])
    assert code == 2 and err.startswith("hwopt: error: "), err
    assert rss <= 20 * len(data) + FIXED_OVERHEAD, f"peak {rss:,} bytes for a {len(data):,}-byte file"


def test_peak_memory_of_an_accepted_sparse_model(tmp_path: Path) -> None:
    """A model the bound lets through (densified within budget) stays within 20x + overhead too."""
    data = repeated_sparse_subgraphs(count=4, side=1024)
    path = tmp_path / "sparse.tflite"
    path.write_bytes(data)
    code, rss, err = peak_rss([sys.executable, "-m", "hwopt", "audit", "--json", str(path)])
    assert code in (0, 1), err
    assert rss <= 20 * len(data) + FIXED_OVERHEAD, f"peak {rss:,} bytes for a {len(data):,}-byte file"
