"""The IR as the reader builds it: op names, quantization, zero points, subgraphs, sparse tensors."""

from __future__ import annotations

import numpy as np
import pytest
from modelgen import ModelBuilder, conv_options, int8_conv_model, pack, quantization

from hwopt._generated.tflite.BuiltinOperator import BuiltinOperator
from hwopt._generated.tflite.BuiltinOptions import BuiltinOptions
from hwopt._generated.tflite.DimensionMetadata import DimensionMetadataT
from hwopt._generated.tflite.DimensionType import DimensionType
from hwopt._generated.tflite.Int32Vector import Int32VectorT
from hwopt._generated.tflite.SparseIndexVector import SparseIndexVector
from hwopt._generated.tflite.SparsityParameters import SparsityParametersT
from hwopt._generated.tflite.Uint8Vector import Uint8VectorT
from hwopt._generated.tflite.Uint16Vector import Uint16VectorT
from hwopt.analysis.layers import Layout, weight_layers, zero_corrected
from hwopt.engines.audit import audit_model
from hwopt.errors import ModelFormatError, PassError
from hwopt.format.tflite_io import BUILTIN_CODES, read_model, serialize
from hwopt.ir import DType, Quantization


def _ops_model(codes: list[tuple[int, int, str | None]]) -> bytes:
    """One subgraph with one operator per (builtin_code, deprecated_builtin_code, custom_code)."""
    mb = ModelBuilder()
    sg = mb.subgraph()
    x = sg.tensor("x", (1, 4), "float32")
    for i, (code, deprecated, custom) in enumerate(codes):
        name = "ADD" if custom is None else "CUSTOM"
        sg.op(name, [x], [sg.tensor(f"y{i}", (1, 4), "float32")], custom=custom, version=i + 1)
        oc = mb.raw.operatorCodes[-1]
        oc.builtinCode, oc.deprecatedBuiltinCode = code, deprecated
    sg.io([x], [1])
    return mb.build()


class TestOpNames:
    def test_code_above_127_uses_builtin_code(self) -> None:
        gelu = BuiltinOperator.GELU
        assert gelu > 127
        model = read_model(_ops_model([(gelu, 127, None)]))
        op = model.subgraphs[0].operators[0]
        assert (op.op, op.builtin_code) == ("GELU", gelu)

    def test_old_file_with_only_deprecated_code(self) -> None:
        # Files before schema 3a carry only deprecated_builtin_code; builtin_code reads 0 (ADD).
        model = read_model(_ops_model([(0, BuiltinOperator.CONV_2D, None), (0, 0, None)]))
        assert [op.op for op in model.subgraphs[0].operators] == ["CONV_2D", "ADD"]

    def test_custom_op_names(self) -> None:
        model = read_model(_ops_model([(BuiltinOperator.CUSTOM, BuiltinOperator.CUSTOM, "MyOp"),
                                       (BuiltinOperator.CUSTOM, BuiltinOperator.CUSTOM, "")]))
        ops = model.subgraphs[0].operators
        assert [op.op for op in ops] == ["CUSTOM:MyOp", "CUSTOM:?"]
        assert ops[0].custom_code == "MyOp"
        assert not model.vela_compiled

    def test_unknown_builtin_keeps_its_number(self) -> None:
        model = read_model(_ops_model([(4000, 127, None)]))
        assert model.subgraphs[0].operators[0].op == "BUILTIN_4000"

    def test_builtin_table_is_the_schema_enum(self) -> None:
        assert BUILTIN_CODES["CONV_2D"] == 3
        assert BUILTIN_CODES["DEPTHWISE_CONV_2D"] == 4
        assert BUILTIN_CODES["FULLY_CONNECTED"] == 9
        assert BUILTIN_CODES["CUSTOM"] == 32

    def test_vela_custom_op_marks_compiled(self) -> None:
        mb = ModelBuilder()
        sg = mb.subgraph()
        x = sg.tensor("x", (1, 8), "int8", quant=quantization(0.1, 0))
        cmd = sg.tensor("command_stream", (64,), "uint8", data=np.arange(64, dtype=np.uint8))
        y = sg.tensor("y", (1, 8), "int8", quant=quantization(0.1, 0))
        sg.op("CUSTOM", [cmd, x], [y], custom="ethos-u")
        sg.io([x], [y])
        model = read_model(mb.build())
        assert model.vela_compiled
        assert model.subgraphs[0].operators[0].op == "CUSTOM:ethos-u"
        # The command stream is opaque: it is not a weight layer.
        assert weight_layers(model) == []


class TestQuantization:
    def test_per_tensor(self) -> None:
        q = Quantization(np.array([0.5], np.float32), np.array([3]))
        assert not q.per_channel and q.granularity == "per-tensor"
        assert q.zero_points_along((2, 3)).shape == (1, 1)
        assert int(q.zero_points_along((2, 3))[0, 0]) == 3

    def test_per_axis_broadcast(self) -> None:
        q = Quantization(np.array([0.1, 0.2, 0.3], np.float32), np.array([1, 2, 3]), quantized_dimension=1)
        assert q.per_channel and q.granularity == "per-channel"
        zp = q.zero_points_along((2, 3, 4))
        assert zp.shape == (1, 3, 1)
        w = np.zeros((2, 3, 4), np.int64) + zp
        assert (w[:, 2, :] == 3).all() and (w[:, 0, :] == 1).all()

    def test_reader_types_and_axes(self) -> None:
        model = read_model(int8_conv_model(channels=6, in_channels=2))
        sg = model.subgraphs[0]
        conv_w = sg.tensors[1]
        assert conv_w.dtype is DType.INT8 and conv_w.shape == (6, 3, 3, 2)
        assert conv_w.quantization is not None and conv_w.quantization.per_channel
        assert conv_w.quantization.quantized_dimension == 0 and conv_w.quantization.scale.size == 6
        fc_w = sg.tensors[4]
        assert fc_w.quantization is not None and not fc_w.quantization.per_channel
        assert DType.INT8.numpy == np.dtype("i1") and DType.INT8.label == "int8"
        assert DType.FLOAT16.is_float and DType.UINT8.is_integer and DType.INT4.numpy is None

    def test_bias_quantized_dimension_left_from_filter(self) -> None:
        # Some converters copy the filter's quantized_dimension (3) onto the 1-D bias.
        mb = ModelBuilder()
        sg = mb.subgraph()
        sg.tensor("bias", (5,), "int32", data=np.arange(5, dtype=np.int32),
                  quant=quantization(np.full(5, 0.01), 0, axis=3))
        sg.io([], [0])
        t = read_model(mb.build()).subgraphs[0].tensors[0]
        assert t.quantization is not None and t.quantization.quantized_dimension == 0
        assert t.raw.quantization.quantizedDimension == 3  # stored value kept for the writer

    def test_scale_count_matching_no_axis_is_rejected(self) -> None:
        mb = ModelBuilder()
        sg = mb.subgraph()
        sg.tensor("w", (4, 4), "int8", data=np.zeros((4, 4), np.int8), quant=quantization(np.full(3, 0.1), 0, 0))
        sg.io([], [0])
        with pytest.raises(ModelFormatError, match="per-axis scales"):
            read_model(mb.build())

    def test_uint8_zero_point_counts_as_zero(self) -> None:
        # Asymmetric uint8: a weight is "zero" when it equals the zero point (here 128).
        rng = np.random.default_rng(3)
        w = rng.integers(0, 256, size=(4, 3, 3, 2)).astype(np.uint8)
        w[w == 128] = 129
        planted = rng.choice(w.size, size=29, replace=False)
        w.reshape(-1)[planted] = 128
        w[2] = 128  # one all-zero output channel
        expected_zeros = int((w == 128).sum())
        mb = ModelBuilder()
        sg = mb.subgraph()
        x = sg.tensor("x", (1, 5, 5, 2), "uint8", quant=quantization(0.02, 128))
        wt = sg.tensor("w", w.shape, "uint8", data=w, quant=quantization(0.01, 128))
        b = sg.tensor("b", (4,), "int32", data=np.zeros(4, np.int32), quant=quantization(0.0002, 0))
        y = sg.tensor("y", (1, 5, 5, 4), "uint8", quant=quantization(0.05, 120))
        sg.op("CONV_2D", [x, wt, b], [y], options=conv_options(), options_type=BuiltinOptions.Conv2DOptions)
        sg.io([x], [y])
        data = mb.build()
        model = read_model(data)
        (layer,) = weight_layers(model)
        corrected = zero_corrected(model, layer)
        assert int((corrected == 0).sum()) == expected_zeros
        la = audit_model(model, data, "m.tflite").layers[0]
        assert la.sparsity == pytest.approx(expected_zeros / w.size)
        assert la.zero_channels == 1 and la.zero_points == [128]


class TestSubgraphs:
    def test_two_subgraphs_and_round_trip(self) -> None:
        mb = ModelBuilder()
        for k in range(2):
            sg = mb.subgraph(f"sg{k}")
            x = sg.tensor("x", (1, 4), "int8", quant=quantization(0.1, 0))
            w = sg.tensor("w", (3, 4), "int8", data=np.full((3, 4), k + 1, np.int8), quant=quantization(0.1, 0))
            y = sg.tensor("y", (1, 3), "int8", quant=quantization(0.2, 0))
            sg.op("FULLY_CONNECTED", [x, w, -1], [y])
            sg.io([x], [y])
        mb.signature("first", 0, {"x": 0}, {"y": 2})
        mb.signature("second", 1, {"x": 0}, {"y": 2})
        model = read_model(mb.build())
        assert [sg.name for sg in model.subgraphs] == ["sg0", "sg1"]
        assert [(sg.index, op.op) for sg, op in model.operators()] == [(0, "FULLY_CONNECTED"), (1, "FULLY_CONNECTED")]
        assert model.subgraphs[1].tensor(-1) is None
        layers = weight_layers(model)
        assert [(wl.subgraph, wl.layout, wl.bias_index) for wl in layers] == [(0, Layout.OI, -1), (1, Layout.OI, -1)]
        assert [int(np.asarray(wl.weights(model).data)[0, 0]) for wl in layers] == [1, 2]
        again = read_model(serialize(model))
        assert again.signature_keys == ("first", "second")
        assert [int(np.asarray(sg.tensors[1].data).sum()) for sg in again.subgraphs] == [12, 24]

    def test_no_subgraph_is_rejected(self) -> None:
        mb = ModelBuilder()
        with pytest.raises(ModelFormatError, match="no subgraphs"):
            read_model(mb.build())


class TestSetTensorData:
    def test_shared_buffer_is_split(self) -> None:
        mb = ModelBuilder()
        sg = mb.subgraph()
        buf = mb.buffer(np.arange(8, dtype=np.int8))
        sg.tensor("a", (8,), "int8", buffer=buf, data=None)
        sg.tensor("b", (8,), "int8", buffer=buf, data=None)
        sg.io([], [0, 1])
        model = read_model(mb.build())
        a, b = model.subgraphs[0].tensors
        model.set_tensor_data(model.subgraphs[0], a, np.zeros(8, np.int8))
        assert a.buffer != b.buffer
        again = read_model(serialize(model))
        ta, tb = again.subgraphs[0].tensors
        assert ta.data is not None and tb.data is not None
        assert not ta.data.any() and tb.data.tolist() == list(range(8))

    def test_non_constant_is_refused(self) -> None:
        model = read_model(int8_conv_model())
        sg = model.subgraphs[0]
        with pytest.raises(PassError):
            model.set_tensor_data(sg, sg.tensors[0], np.zeros(4))


def _csr_blocked(dense: np.ndarray, block: int, index_type: int) -> tuple[np.ndarray, SparsityParametersT]:
    """Encode a 2-D matrix as TFLite does for 1 x `block` blocks: dim0 DENSE, dim1 CSR over blocks."""
    rows, cols = dense.shape
    values: list[np.ndarray] = []
    segments, indices = [0], []
    for r in range(rows):
        for bc in range(cols // block):
            chunk = dense[r, bc * block : (bc + 1) * block]
            if chunk.any():
                indices.append(bc)
                values.append(chunk)
        segments.append(len(indices))
    sp = SparsityParametersT()
    sp.traversalOrder = [0, 1, 2]
    sp.blockMap = [1]
    d0, d1, d2 = DimensionMetadataT(), DimensionMetadataT(), DimensionMetadataT()
    d0.format, d0.denseSize = DimensionType.DENSE, rows
    d1.format = DimensionType.SPARSE_CSR
    vec = {SparseIndexVector.Int32Vector: Int32VectorT, SparseIndexVector.Uint16Vector: Uint16VectorT,
           SparseIndexVector.Uint8Vector: Uint8VectorT}[index_type]
    seg, idx = vec(), vec()
    seg.values, idx.values = segments, indices
    d1.arraySegmentsType = d1.arrayIndicesType = index_type
    d1.arraySegments, d1.arrayIndices = seg, idx
    d2.format, d2.denseSize = DimensionType.DENSE, block
    sp.dimMetadata = [d0, d1, d2]
    return np.concatenate(values) if values else np.zeros(0, dense.dtype), sp


def _csr_plain(dense: np.ndarray) -> tuple[np.ndarray, SparsityParametersT]:
    """Plain CSR (no blocks): dim0 DENSE, dim1 SPARSE_CSR with Int32 vectors."""
    sp = SparsityParametersT()
    sp.traversalOrder = [0, 1]
    d0, d1 = DimensionMetadataT(), DimensionMetadataT()
    d0.format, d0.denseSize = DimensionType.DENSE, dense.shape[0]
    d1.format = DimensionType.SPARSE_CSR
    seg, idx = Int32VectorT(), Int32VectorT()
    nz = [np.flatnonzero(row) for row in dense]
    seg.values = np.concatenate(([0], np.cumsum([len(n) for n in nz]))).tolist()
    idx.values = np.concatenate(nz).tolist()
    d1.arraySegmentsType = d1.arrayIndicesType = SparseIndexVector.Int32Vector
    d1.arraySegments, d1.arrayIndices = seg, idx
    sp.dimMetadata = [d0, d1]
    return dense[dense != 0], sp


def _sparse_model(values: np.ndarray, sp: SparsityParametersT, shape: tuple[int, ...]) -> bytes:
    mb = ModelBuilder()
    sg = mb.subgraph()
    x = sg.tensor("x", (1, shape[1]), "int8", quant=quantization(0.1, 0))
    w = sg.tensor("w", shape, "int8", data=values.astype(np.int8), quant=quantization(0.05, 0), sparsity=sp)
    y = sg.tensor("y", (1, shape[0]), "int8", quant=quantization(0.2, 0))
    sg.op("FULLY_CONNECTED", [x, w, -1], [y])
    sg.io([x], [y])
    return mb.build()


class TestSparseTensors:
    @pytest.mark.parametrize("index_type", [SparseIndexVector.Int32Vector, SparseIndexVector.Uint16Vector,
                                            SparseIndexVector.Uint8Vector])
    def test_block_csr_densified(self, index_type: int) -> None:
        rng = np.random.default_rng(7)
        dense = rng.integers(-100, 100, size=(6, 16)).astype(np.int8)
        keep = rng.random((6, 4)) < 0.5
        keep[3] = False  # one row with no stored block
        dense = dense * np.repeat(keep, 4, axis=1).astype(np.int8)
        values, sp = _csr_blocked(dense, 4, index_type)
        model = read_model(_sparse_model(values, sp, dense.shape))
        t = model.subgraphs[0].tensors[1]
        assert t.sparse and t.data is not None
        np.testing.assert_array_equal(t.data, dense)
        la = audit_model(model, b"", "m.tflite").layers[0]
        assert la.sparsity == pytest.approx(float((dense == 0).mean()))
        # Written back unchanged: still sparse, still the same dense values.
        again = read_model(serialize(model))
        assert again.subgraphs[0].tensors[1].sparse
        np.testing.assert_array_equal(again.subgraphs[0].tensors[1].data, dense)

    def test_plain_csr_densified(self) -> None:
        dense = np.zeros((5, 7), np.int8)
        dense[0, [1, 6]] = [3, -4]
        dense[2, 0] = 9
        dense[4, :] = np.arange(1, 8)
        values, sp = _csr_plain(dense)
        t = read_model(_sparse_model(values, sp, dense.shape)).subgraphs[0].tensors[1]
        np.testing.assert_array_equal(t.data, dense)

    def test_new_values_make_the_tensor_dense(self) -> None:
        dense = np.eye(4, 8, dtype=np.int8)
        values, sp = _csr_plain(dense)
        model = read_model(_sparse_model(values, sp, dense.shape))
        sg = model.subgraphs[0]
        model.set_tensor_data(sg, sg.tensors[1], np.full((4, 8), 2, np.int8))
        t = read_model(serialize(model)).subgraphs[0].tensors[1]
        assert not t.sparse and t.raw.sparsity is None
        assert t.data is not None and (t.data == 2).all()

    def test_index_out_of_range_is_rejected(self) -> None:
        dense = np.eye(4, 8, dtype=np.int8)
        values, sp = _csr_plain(dense)
        sp.dimMetadata[1].arrayIndices.values = [0, 1, 2, 9]
        with pytest.raises(ModelFormatError, match="sparse index out of range"):
            read_model(_sparse_model(values, sp, dense.shape))

    def test_bad_segments_are_rejected(self) -> None:
        dense = np.eye(4, 8, dtype=np.int8)
        values, sp = _csr_plain(dense)
        sp.dimMetadata[1].arraySegments.values = [0, 3, 1, 2, 4]
        with pytest.raises(ModelFormatError):
            read_model(_sparse_model(values, sp, dense.shape))


def test_metadata_description_and_version_read() -> None:
    mb = ModelBuilder("a description")
    sg = mb.subgraph()
    sg.tensor("x", (1,), "float32")
    sg.io([0], [0])
    mb.metadata("min_runtime_version", b"2.3.0\0")
    mb.metadata("extra", b"\x01\x02")
    model = read_model(pack(mb.raw))
    assert model.description == "a description" and model.version == 3
    assert model.metadata == {"min_runtime_version": b"2.3.0\0", "extra": b"\x01\x02"}
    assert not model.external_buffers and model.path is None
