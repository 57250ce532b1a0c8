"""`hwopt estimate` on TFLite versions of the reference networks against Arm's support library.

The reference networks (../shared/reference/ethos-n/cases.json) are written as int8 TFLite models
with the reference's own weights (tools/reference_ethos_n_tflite.py); `hwopt estimate --target
ethos-n78-*` must give the library's per-pass MCE cycles, PLE cycles and DRAM bytes
(estimates.json, made by the library itself), and exactly the figures of the reference adapter
(tools/reference_ethos_n_estimate.py) on the same network.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from hwopt.engines.estimate import estimate
from hwopt.targets import resolve_target

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT.parent / "shared" / "reference" / "ethos-n"


def _tool(name: str) -> ModuleType:
    sys.path.insert(0, str(ROOT / "tools"))
    return importlib.import_module(name)


@pytest.fixture(scope="module")
def reference() -> Any:
    if not (REFERENCE / "estimates.json").is_file():
        pytest.skip("Ethos-N reference data ../shared/reference/ethos-n not found")
    return _tool("reference_ethos_n_data").load(REFERENCE)


# (network, the ReLUs fused into the layers' options): ds_cnn_s keeps explicit RELU6 operators,
# since its first layer is one the library only estimates and its ReLU then runs on the NPU by itself.
NETWORKS = [("ds_cnn_s", False), ("simple_cnn", False), ("simple_cnn", True)]


@pytest.mark.parametrize(("name", "fused"), NETWORKS)
def test_tflite_estimate_equals_the_reference_adapter(reference: Any, name: str, fused: bool) -> None:
    if name not in reference.networks:
        pytest.skip(f"reference network {name} not in this reference directory")
    rt = _tool("reference_ethos_n_tflite")
    net = reference.networks[name]
    model = rt.reference_tflite(net, fused)
    exact = 0
    for variant, entry in reference.estimates["networks"][name].items():
        if "error" in entry:
            continue
        ours = rt.hwopt_passes(model, variant)
        assert ours == rt.adapter_passes(net, variant), variant  # one planner, the same figures
        theirs = rt.library_passes(entry)
        if [p[1:] for p in ours] == theirs:
            exact += 1
            continue
        # Where the adapter's plan differs from the library's (simple_cnn on 1TOPS_4PLE and
        # 8TOPS_2PLE: a weight stripe split and an output conversion pass), the sums still hold.
        mce, ple = (sum(p[i] for p in ours) for i in (1, 2))
        assert (mce, ple) == (sum(p[0] for p in theirs), sum(p[1] for p in theirs)), variant
        dram, lib_dram = sum(sum(p[3:]) for p in ours), sum(sum(p[2:]) for p in theirs)
        assert abs(dram - lib_dram) <= 0.005 * lib_dram, variant
    assert exact >= 2  # ds_cnn_s on all four variants, simple_cnn on 4TOPS_2PLE and 4TOPS_4PLE


def test_pools_fuse_into_the_layer_before(reference: Any, tmp_path: Path) -> None:
    # simple_cnn: each 2x2 max pool rides on the PLE of the 5x5 convolution before it (one pass,
    # kernel MAXPOOL_2X2), as in the library's stream.
    if "simple_cnn" not in reference.networks:
        pytest.skip("reference network simple_cnn not in this reference directory")
    path = tmp_path / "simple_cnn.tflite"
    path.write_bytes(_tool("reference_ethos_n_tflite").reference_tflite(reference.networks["simple_cnn"], True))
    report = estimate(path, resolve_target("ethos-n78-4tops-4ple"), engine="analytic")
    by_op = [(la.op, [p.ple_operation for p in la.passes], la.cycles) for la in report.layers]
    assert [op for op, _, _ in by_op] == ["CONV_2D", "MAX_POOL_2D", "CONV_2D", "MAX_POOL_2D", "CONV_2D", "RESHAPE",
                                          "FULLY_CONNECTED"]
    assert by_op[0][1] == by_op[2][1] == ["MAXPOOL_2X2"]
    assert by_op[1][1:] == by_op[3][1:] == ([], 0)
    lib = reference.estimates["networks"]["simple_cnn"]["4TOPS_4PLE_RATIO"]["future"]["passes"]
    assert [q["ple"]["operation_name"] for q in lib[:2]] == ["MAXPOOL_2X2_2_2"] * 2


def test_untranslatable_padding_is_reported(reference: Any) -> None:
    # ds_cnn_s_k7x3 pads its 7x3 stride-2 layer 1/1 left/right; TFLite's SAME would pad 0/1.
    if "ds_cnn_s_k7x3" not in reference.networks:
        pytest.skip("reference network ds_cnn_s_k7x3 not in this reference directory")
    rt = _tool("reference_ethos_n_tflite")
    with pytest.raises(rt.NotExpressibleError, match="neither SAME nor VALID"):
        rt.reference_tflite(reference.networks["ds_cnn_s_k7x3"])


def test_mean_after_a_layer_plans_like_the_adapter() -> None:
    # A network shaped like the unseen mobilenet tail (1x1 conv, 7x7 mean, fully connected):
    # hwopt estimate on its TFLite form and the adapter on its reference form give the same passes,
    # with the mean fused into the conv's PLE (MEAN_XY) and no pass of its own.
    rt = _tool("reference_ethos_n_tflite")
    net = {"name": "tail", "layers": [
        {"type": "Input", "output_shape": [1, 7, 7, 32]},
        {"type": "Convolution", "input_shape": [1, 7, 7, 32], "output_shape": [1, 7, 7, 64], "kernel": [1, 1],
         "stride": 1, "padding_tblr": [0, 0, 0, 0], "weight_seed": 7},
        {"type": "Relu", "input_shape": [1, 7, 7, 64], "output_shape": [1, 7, 7, 64]},
        {"type": "MeanXy", "input_shape": [1, 7, 7, 64], "output_shape": [1, 1, 1, 64]},
        {"type": "FullyConnected", "input_shape": [1, 1, 1, 64], "output_shape": [1, 1, 1, 10], "kernel": [1, 1],
         "stride": 1, "padding_tblr": [0, 0, 0, 0], "weight_seed": 8},
        {"type": "Output", "input_shape": [1, 1, 1, 10], "output_shape": [1, 1, 1, 10]}]}
    for fused in (False, True):
        ours = rt.hwopt_passes(rt.reference_tflite(net, fused), "4TOPS_4PLE_RATIO")
        assert ours == rt.adapter_passes(net, "4TOPS_4PLE_RATIO")
        assert [p[0] for p in ours] == ["MEAN_XY", "PASSTHROUGH"]
