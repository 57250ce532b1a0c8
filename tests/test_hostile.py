"""Regression tests, one minimal crafted model per hostile input that used to crash, hang or exit 3.

Each model is checked before native code sees it: the command ends with one `hwopt: error:` line
naming the operator and field (exit 2), or, where the input is valid (a large dilation), with
the same result as its plain twin.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import hostile
import numpy as np
import pytest
from conftest import CliRunner

from hwopt._generated.tflite.Model import ModelT
from hwopt.engines.encode import encode_model
from hwopt.format.tflite_io import read_model
from hwopt.targets import resolve_target as load_target


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("target", ["ethos-u55-128", "ethos-u65-256", "ethos-u85-256"])
def test_dilated_1x1_encodes_like_its_undilated_twin(target: str) -> None:
    """1x1 kernel, dilation 9: the sub-kernel step was 8 // 9 = 0 (an endless loop in mlw_codec)."""
    tgt = load_target(target)
    plain = encode_model(read_model(hostile.conv_model(kernel=1, dilation=1)), tgt, block_source="vela")
    dilated = encode_model(read_model(hostile.dilated_1x1(9)), tgt, block_source="vela")
    assert dilated.summary.roundtrip_ok
    # Vela (independent) stores the same bytes for both; so must hwopt.
    assert dilated.summary.vela_encoded_bytes == plain.summary.vela_encoded_bytes
    assert dilated.summary.encoded_bytes == plain.summary.encoded_bytes
    assert [la._data for la in dilated.layers] == [la._data for la in plain.layers]


def test_dilated_1x1_runs_through_compile_and_enforce(tmp_path: Path, run_cli: CliRunner) -> None:
    model = _write(tmp_path, "dil9", hostile.dilated_1x1(9))
    r = run_cli("compile", model, "--target", "ethos-u55-128", "-o", tmp_path / "out")
    assert r.code in (0, 1), r.err
    r = run_cli("enforce", model, "--sparsity", "0.5", "-o", tmp_path / "e.tflite")
    assert r.code in (0, 1), r.err


CASES: list[tuple[str, Callable[[], bytes], str]] = [
    ("int4", hostile.int4_weights, "is INT4: packed types are not supported by Vela"),
    ("zero_point", hostile.weight_zero_point, "has zero point 1000, outside -128..127"),
    ("unknown_op", hostile.unknown_operator, "unknown builtin operator code 400"),
    ("missing_filter", hostile.missing_filter, "CONV_2D #0: required input 1 is missing (-1)"),
    ("stride_0", lambda: hostile.bad_stride(0), "CONV_2D #0: strideW = 0"),
    ("stride_-2", lambda: hostile.bad_stride(-2), "CONV_2D #0: strideW = -2"),
    ("dilation_0", lambda: hostile.bad_dilation(0), "CONV_2D #0: dilationWFactor = 0"),
    ("options_of_another_op", hostile.options_of_another_op,
     "CONV_2D #0: carries FullyConnectedOptions instead of Conv2DOptions"),
    ("options_type_without_table", hostile.options_type_without_table,
     "CONV_2D #0: declares options type 71 but holds no options table"),
    ("custom_op_with_options", hostile.custom_op_with_options, "a custom operator carrying builtin options"),
    ("zero_shape_signature", hostile.zero_shape_signature, "has shape_signature [0] for shape [8]"),
    ("nan_scale", hostile.nan_scale, "has a quantization scale that is not finite"),
    ("extreme_scale", hostile.extreme_scale, "has a quantization scale outside [1e-30, 1e+10]"),
    ("variant_tensor", hostile.variant_tensor, "is VARIANT, a type Vela does not handle"),
    ("huge_batch", hostile.huge_batch, "has batch 65536; Vela compiles one operation per batch item"),
    ("conv_weights_rank_3", hostile.conv_weights_of_rank_3, "CONV_2D #0: weights 'conv/weights' have shape [8, 9, 8]"),
    ("conv_output_rank_3", hostile.conv_output_of_rank_3,
     "CONV_2D #0: output 'conv/out' has shape [1, 256, 8] (a 2-D operator needs 4 dimensions)"),
    ("missing_options", hostile.missing_options, "CONV_2D #0: has no options table"),
    ("bool_weights", hostile.bool_weights, "weights 'conv/weights' are BOOL, a weight type Vela does not handle"),
    ("fc_weights_rank_3", hostile.fc_weights_of_rank_3,
     "FULLY_CONNECTED #0: weights 'fc/weights' have shape [1, 4, 16] (need [outputs, inputs]"),
    ("fc_input_shorter_than_a_row", hostile.fc_input_shorter_than_a_row,
     "FULLY_CONNECTED #0: input 'input' has 8 values, fewer than one row of weights (16)"),
]


@pytest.mark.parametrize(("name", "build", "message"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("command", ["estimate", "compile", "gate"])
def test_vela_paths_reject_before_vela(tmp_path: Path, run_cli: CliRunner, name: str, build: Callable[[], bytes],
                                       message: str, command: str) -> None:
    model = _write(tmp_path, name, build())
    args = {"estimate": ["--target", "ethos-u55-128"], "compile": ["--target", "ethos-u55-128", "-o", tmp_path / "o"],
            "gate": ["--target", "ethos-u55-128", "--baseline", tmp_path / "b.json", "--update-baseline"]}[command]
    r = run_cli(command, model, *args)
    assert r.code == 2, r.err
    assert r.err.startswith("hwopt: error: Vela cannot take this model: ") and message in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert not (tmp_path / "b.json").exists() and not (tmp_path / "o").exists()


@pytest.mark.parametrize(("name", "build", "message"), [c for c in CASES if c[0] in
                                                        ("missing_filter", "stride_0", "stride_-2", "dilation_0", "zero_point",
                                                         "nan_scale", "extreme_scale", "options_of_another_op")],
                         ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("target", ["ethos-u55-128", "ethos-n78-4tops-4ple"])
def test_the_analytic_engine_rejects_what_vela_rejects(tmp_path: Path, run_cli: CliRunner, name: str,
                                                       build: Callable[[], bytes], message: str, target: str) -> None:
    r = run_cli("estimate", _write(tmp_path, name, build()), "--engine", "analytic", "--target", target)
    assert r.code == 2, r.err
    assert message in r.err and "analytic estimator cannot take this model" in r.err


@pytest.mark.parametrize(("name", "build", "message"), CASES, ids=[c[0] for c in CASES])
def test_enforce_never_passes_a_hostile_model_to_litert(tmp_path: Path, run_cli: CliRunner, name: str,
                                                        build: Callable[[], bytes], message: str) -> None:
    out = tmp_path / "e.tflite"
    r = run_cli("enforce", _write(tmp_path, name, build()), "--sparsity", "0.5", "-o", out)
    assert r.code == 2, r.err
    assert r.err.startswith("hwopt: error: ") and len(r.err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize(("name", "build", "reason"), [
    ("zero_point", hostile.weight_zero_point, "zero point 1000"),
    ("stride_-2", lambda: hostile.bad_stride(-2), "strideW = -2"),
    ("dilation_0", lambda: hostile.bad_dilation(0), "dilationWFactor = 0"),
])
@pytest.mark.parametrize("target", ["ethos-u55-128", "ethos-u85-256", "ethos-n78-4tops-4ple"])
def test_encode_reports_layers_it_cannot_pass_on(name: str, build: Callable[[], bytes], reason: str, target: str) -> None:
    report = encode_model(read_model(build()), load_target(target))
    (layer,) = report.layers
    assert not layer.encodable and reason in (layer.reason or "")


def test_encode_of_int4_weights_is_a_clean_error(tmp_path: Path, run_cli: CliRunner) -> None:
    r = run_cli("encode", _write(tmp_path, "int4", hostile.int4_weights()), "--target", "ethos-u55-128")
    assert r.code == 2 and r.err.strip() == "hwopt: error: the model has no int8/uint8 weight layers to encode"


@pytest.mark.parametrize("build", [hostile.non_utf8_name, lambda: hostile.long_name(5000)], ids=["non_utf8", "long"])
def test_unusual_names_go_through_every_vela_path(tmp_path: Path, run_cli: CliRunner, build: Callable[[], bytes]) -> None:
    """Names that are not UTF-8 or longer than 255 bytes are valid TFLite: no exit 3, no rejection."""
    model = _write(tmp_path, "named", build())
    for args in (["estimate", "--target", "ethos-u55-128", "--json"],
                 ["compile", "--target", "ethos-u55-128", "-o", tmp_path / "o"],
                 ["encode", "--target", "ethos-u55-128", "--blocks", "vela", "--emit", tmp_path / "e"],
                 ["gate", "--target", "ethos-u55-128", "--baseline", tmp_path / "b.json", "--update-baseline"]):
        r = run_cli(args[0], model, *args[1:])
        assert r.code in (0, 1), (args, r.err)


def test_n78_estimate_never_places_what_n78_encode_rejects() -> None:
    """A 9x9 kernel at stride 2 has no N78 weight layout: encode rejects it, so the estimate keeps it off the NPU."""
    from hwopt.engines.estimate import estimate

    model = read_model(hostile.conv_model(kernel=9, stride=2, size=32))
    target = load_target("ethos-n78-4tops-4ple")
    (layer,) = encode_model(model, target).layers
    assert not layer.encodable and "Stride X and Y must be 1" in (layer.reason or "")
    (row,) = [la for la in estimate(model, target, engine="analytic").layers if la.op == "CONV_2D"]
    assert row.placement == "cpu" and row.encoded_weight_bytes is None
    plain = read_model(hostile.conv_model(kernel=3, stride=2, size=32))
    (row,) = [la for la in estimate(plain, target, engine="analytic").layers if la.op == "CONV_2D"]
    assert row.placement == "npu"


def test_litert_runtime_errors_are_clean(run_cli: CliRunner, tmp_path: Path) -> None:
    """A model LiteRT loads but cannot run (an operator removed: its output has no data) is exit 2, not 3."""
    from modelgen import int8_conv_model

    data = hostile.edited(int8_conv_model(), lambda m: m.subgraphs[0].operators.pop(0))
    r = run_cli("enforce", _write(tmp_path, "dropped", data), "--sparsity", "0.5", "-o", tmp_path / "o.tflite")
    assert r.code == 2, r.err
    assert r.err.strip().splitlines()[-1] == "hwopt: error: LiteRT cannot run the model: Input tensor 3 lacks data"


@pytest.mark.parametrize("build", [hostile.nan_scale, hostile.extreme_scale, lambda: hostile.extreme_scale(1e-38)],
                         ids=["nan", "1e38", "1e-38"])
def test_check_rejects_absurd_scales(tmp_path: Path, run_cli: CliRunner, build: Callable[[], bytes]) -> None:
    for target in ("ethos-u55-128", "ethos-n78-4tops-4ple"):
        r = run_cli("check", _write(tmp_path, "scale", build()), "--target", target, "--json")
        assert r.code == 2 and "quantization scale" in r.err, r.err


@pytest.mark.parametrize(("shape", "placement"), [((4, 1, 16), "npu"), ((4, 1, 1, 16), "npu"), ((1, 4, 1, 16), "cpu")])
def test_fully_connected_weights_vela_folds_or_leaves_to_the_cpu(tmp_path: Path, run_cli: CliRunner,
                                                                 shape: tuple[int, ...], placement: str) -> None:
    """Only the unfoldable shapes below four dimensions crash Regor; the rest are Vela's call (NPU or CPU)."""
    import json

    r = run_cli("estimate", _write(tmp_path, "fc", hostile.fc_model(weight_shape=shape)), "--target", "ethos-u55-128",
                "--json")
    assert r.code == 0, r.err
    (row,) = [la for la in json.loads(r.out)["layers"] if la["op"] == "FULLY_CONNECTED"]
    assert row["placement"] == placement


def test_an_omitted_input_where_none_is_optional_never_reaches_litert(tmp_path: Path, run_cli: CliRunner) -> None:
    """QUANTIZE with input -1: LiteRT's kernel reads the missing tensor (SIGSEGV); refused before it loads."""
    from hwopt.analysis.litert import Runner
    from hwopt.errors import UnsupportedModelError

    data = hostile.quantize_input_missing()
    with pytest.raises(UnsupportedModelError, match="QUANTIZE #0: input 0 is omitted"):
        Runner(data)
    r = run_cli("enforce", _write(tmp_path, "q", data), "--sparsity", "0.5", "-o", tmp_path / "e.tflite")
    assert r.code == 2
    assert r.err.strip().splitlines()[-1] == ("hwopt: error: LiteRT cannot take this model: QUANTIZE #0: input 0 is "
                                              "omitted (-1), but QUANTIZE has no optional input there")
    # The optional bias of a FULLY_CONNECTED may be omitted: LiteRT runs that model.
    no_bias = hostile.edited(hostile.fc_model(), lambda m: hostile._set(m.subgraphs[0].operators[0], "inputs",
                                                                           np.asarray([0, 1, -1], np.int32)))
    assert Runner(no_bias).invoke([np.zeros((1, 16), np.int8)])[0].shape == (1, 4)


@pytest.mark.parametrize("target", ["ethos-u55-128", "ethos-u65-256", "ethos-u85-256"])
def test_block_search_encode_of_an_infinite_scale(tmp_path: Path, run_cli: CliRunner, target: str) -> None:
    """`encode --blocks rule` places operators without Vela: Vela's support rule for scales needing a left
    shift met an infinite output scale (frexp gives no exponent) and raised; the layer is reported instead."""
    model = _write(tmp_path, "inf", hostile.extreme_scale(float("inf")))
    r = run_cli("encode", model, "--target", target, "--blocks", "rule", "--json")
    assert r.code == 0, r.err
    (layer,) = __import__("json").loads(r.out)["layers"]
    assert not layer["encodable"] and layer["reason"] == "tensor 'conv/out' has a quantization scale that is not finite"


def test_depthwise_weights_deeper_or_shallower_than_the_output_are_refused(tmp_path: Path, run_cli: CliRunner) -> None:
    """Depthwise weights [1, 3, 3, 16] stored as [1, 3, 16, 3]: Vela compiles them in its own reading, whose stream
    then decodes to other weights than the model's; refused before Vela, reported per layer by --blocks rule."""
    import json

    example = (Path(__file__).resolve().parents[1] / "hwopt" / "example" / "example_int8.tflite").read_bytes()
    sg = ModelT.InitFromObj(hostile.FbModel.GetRootAs(example, 0)).subgraphs[0]
    w = int(sg.operators[1].inputs[1])  # the example's DEPTHWISE_CONV_2D, weights [1, 3, 3, 16]
    assert sg.tensors[w].shape.tolist() == [1, 3, 3, 16]
    data = hostile.edited(example, lambda m: hostile._set(m.subgraphs[0].tensors[w], "shape",
                                                          np.asarray([1, 3, 16, 3], np.int32)))
    model = _write(tmp_path, "dw", data)
    r = run_cli("encode", model, "--target", "ethos-u55-128")
    assert r.code == 2, r.err
    assert r.err.strip().splitlines()[-1] == (
        "hwopt: error: Vela cannot take this model: DEPTHWISE_CONV_2D #1: weights 'dwconv2/weights' have 3 output "
        "channels (shape [1, 3, 16, 3]), the output 'dwconv2/out' has 16")
    r = run_cli("encode", model, "--target", "ethos-u85-256", "--blocks", "rule", "--json")
    assert r.code == 0, r.err
    layer = json.loads(r.out)["layers"][1]
    assert not layer["encodable"] and "have 3 output channels" in layer["reason"]


@pytest.mark.parametrize("target", ["ethos-u85-256", "ethos-u55-128"])
def test_block_search_encode_of_a_stride_no_block_fits(tmp_path: Path, run_cli: CliRunner, shared_models: Path,
                                                       target: str) -> None:
    """A 16-bit depthwise convolution with stride 256: the U85 block search finds no block (depth 0), which the
    encoder stepped by; the layer takes the shape rule instead."""
    import json

    src = (shared_models / "ds_cnn_s_quantized_int16.tflite").read_bytes()
    data = hostile.edited(src, lambda m: hostile._set(m.subgraphs[0].operators[6].builtinOptions, "strideW", 256))
    r = run_cli("encode", _write(tmp_path, "s256", data), "--target", target, "--blocks", "rule", "--json")
    assert r.code == 0, r.err
    (layer,) = [la for la in json.loads(r.out)["layers"] if la["op_index"] == 6]
    assert layer["encodable"] and layer["roundtrip_ok"]


def test_a_reshape_between_types_never_reaches_litert(tmp_path: Path, run_cli: CliRunner, shared_models: Path) -> None:
    """micro_speech's int8 input retyped int32: LiteRT's RESHAPE copies its 7,840 bytes into a 1,960-byte output
    (SIGSEGV); refused first."""
    src = (shared_models / "micro_speech_quantized.tflite").read_bytes()
    sg = ModelT.InitFromObj(hostile.FbModel.GetRootAs(src, 0)).subgraphs[0]
    first = int(sg.operators[0].inputs[0])
    data = hostile.edited(src, lambda m: hostile._set(m.subgraphs[0].tensors[first], "type", 2))  # INT32
    r = run_cli("enforce", _write(tmp_path, "rt", data), "--sparsity", "0.5", "-o", tmp_path / "e.tflite")
    assert r.code == 2, r.err
    assert r.err.strip().splitlines()[-1] == ("hwopt: error: LiteRT cannot take this model: RESHAPE #0: moves data "
                                              "between tensors of types INT32, INT8; LiteRT's RESHAPE copies it "
                                              "unconverted")


def test_a_quantized_activation_without_a_scale_never_reaches_litert(tmp_path: Path, run_cli: CliRunner) -> None:
    """An int8 feature map whose quantization is dropped: LiteRT's requantising kernels abort the process
    (SIGABRT) on it; the fidelity runner refuses it first, naming the operator and the tensor."""
    from hwopt.analysis.litert import Runner
    from hwopt.errors import UnsupportedModelError

    example = (Path(__file__).resolve().parents[1] / "hwopt" / "example" / "example_int8.tflite").read_bytes()
    sg = ModelT.InitFromObj(hostile.FbModel.GetRootAs(example, 0)).subgraphs[0]
    first = sg.operators[0]
    out = int(first.outputs[0])
    name = sg.tensors[out].name.decode()
    data = hostile.edited(example, lambda m: hostile._set(m.subgraphs[0].tensors[out], "quantization", None))
    with pytest.raises(UnsupportedModelError, match=f"tensor {name!r} \\(INT8\\) has no quantization scale"):
        Runner(data)
    r = run_cli("enforce", _write(tmp_path, "noq", data), "--sparsity", "0.5", "-o", tmp_path / "e.tflite")
    assert r.code == 2, r.err
    last = r.err.strip().splitlines()[-1]
    assert last.startswith("hwopt: error: LiteRT cannot take this model: ") and "has no quantization scale" in last
    assert not (tmp_path / "e.tflite").exists()


def test_dilation_vela_would_expand_past_its_bound_is_refused(tmp_path: Path, run_cli: CliRunner) -> None:
    """Dilation 2048: Regor writes a 2049x2049 kernel of zeros and taps (minutes); a rate-6 kernel still compiles."""
    model = _write(tmp_path, "dil", hostile.bad_dilation(2048))
    for args in (["estimate", "--target", "ethos-u55-128"], ["compile", "--target", "ethos-u85-256", "-o", tmp_path / "o"]):
        r = run_cli(args[0], model, *args[1:])
        assert r.code == 2, r.err
        # 8 x 2049 x 2049 x 8 int8 weights (independent arithmetic: 268,697,664 bytes = 256.25 MiB)
        assert r.err.strip() == ("hwopt: error: Vela cannot take this model: CONV_2D #0: dilation 2048x2048 (HxW) makes "
                                 "Vela expand the 3x3 kernel to 2049x2049 (256 MiB of weights; at most 64 MiB)")
    r = run_cli("estimate", _write(tmp_path, "dil6", hostile.bad_dilation(6)), "--target", "ethos-u55-128")
    assert r.code == 0, r.err


@pytest.mark.parametrize("target", ["ethos-u55-128", "ethos-u85-256"])
def test_dilation_above_2_is_encoded_by_hwopt_not_taken_from_vela(target: str) -> None:
    """Vela dilates such a kernel by hand, so its streams hold a larger kernel than the layer: hwopt encodes it."""
    (layer,) = encode_model(read_model(hostile.bad_dilation(3)), load_target(target), block_source="vela").layers
    assert layer.roundtrip_ok and layer.stream_source == "hwopt"
    (plain,) = encode_model(read_model(hostile.bad_dilation(2)), load_target(target), block_source="vela").layers
    assert plain.roundtrip_ok and plain.stream_source == "vela"


def test_vela_streams_are_not_taken_for_a_model_of_several_subgraphs(shared_models: Path) -> None:
    """Vela's streams are located by operator index, which subgraphs share: a changed copy used to hand one
    subgraph's streams to another (round trip failure, exit 3)."""
    import copy

    def change(m: ModelT) -> None:
        m.subgraphs.extend(copy.deepcopy(m.subgraphs[0]) for _ in range(3))
        m.subgraphs[3].operators[9].builtinOptions.strideH = 16

    data = hostile.edited((shared_models / "derived" / "ic_resnet8_pruned50_clustered16_int8.tflite").read_bytes(),
                          change)
    report = encode_model(read_model(data), load_target("ethos-u55-128"), block_source="vela")
    assert report.summary.roundtrip_ok
    assert {la.stream_source for la in report.layers} == {"hwopt"}


def test_fidelity_of_a_model_without_inputs_is_a_clean_error(tmp_path: Path, run_cli: CliRunner) -> None:
    out = tmp_path / "e.tflite"
    r = run_cli("enforce", _write(tmp_path, "noin", hostile.no_inputs()), "--sparsity", "0.5", "-o", out)
    assert r.code == 2 and not out.exists()
    assert r.err.strip().splitlines()[-1] == "hwopt: error: the model declares no inputs: its fidelity cannot be measured"
