"""Model Explorer overlays: valid node-data files keyed by the ids Model Explorer's own TFLite adapter gives.

The ids are checked through the adapter's Python API (package ai-edge-model-explorer, in the
test extra) on every shared int8 model; a headless-Chromium test opens `hwopt explore` and
finds no console errors.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import model_id, shared_model_paths

from hwopt import estimate
from hwopt.format.tflite_io import read_model
from hwopt.reports.explorer import METRICS, graph_id, write_overlays

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "hwopt" / "example" / "example_int8.tflite"
INT8 = shared_model_paths(int8_only=True)


def adapter_graphs(model: Path) -> dict[str, dict[str, dict]]:
    """graph id -> node id -> node, from Model Explorer's built-in TFLite flatbuffer adapter."""
    adapter = pytest.importorskip("model_explorer.builtin_tflite_flatbuffer_adapter",
                                  reason="ai-edge-model-explorer not installed (pip install 'hwopt[explorer]')")
    result = adapter.BuiltinTfliteFlatbufferAdapter().convert(str(model), {})
    (collection,) = result["graphCollections"]
    return {g["id"]: {n["id"]: n for n in g["nodes"]} for g in collection.graphs}


def validate_node_data(doc: dict) -> None:
    """Build Model Explorer's own node-data records from the file: unknown or missing fields raise."""
    ndb = pytest.importorskip("model_explorer.node_data_builder")
    graphs = {}
    for gid, g in doc.items():
        results = {k: ndb.NodeDataResult(**v) for k, v in g["results"].items()}
        gradient = [ndb.GradientItem(**s) for s in g.get("gradient", [])]
        rest = {k: v for k, v in g.items() if k not in ("results", "gradient")}
        graphs[gid] = ndb.GraphNodeData(results=results, gradient=gradient, **rest)
        for r in results.values():
            assert isinstance(r.value, (int, float, str)) and not isinstance(r.value, bool)
        if gradient:
            assert gradient[0].stop == 0 and gradient[-1].stop == 1
            assert all(re.fullmatch(r"#[0-9a-f]{6}", s.bgColor) for s in gradient)
    back = json.loads(ndb.ModelNodeData(graphsData=graphs).to_json_string())  # fields left out take their defaults
    assert {gid: {k: back[gid][k] for k in g} for gid, g in doc.items()} == doc


@pytest.fixture(scope="module")
def example() -> Path:
    assert EXAMPLE.is_file(), "the bundled example model is part of hwopt (tools/make_example_model.py)"
    return EXAMPLE


@pytest.mark.parametrize("model", INT8, ids=[model_id(p) for p in INT8])
def test_overlay_ids_match_the_adapter_on_every_shared_model(model, tmp_path) -> None:
    graphs = adapter_graphs(model)
    m = read_model(model)
    report = estimate(m, "ethos-u55-128", engine="analytic")
    paths = write_overlays(tmp_path, m, report.layers)
    assert [p.name for p in paths] == [f"{metric.key}.json" for metric in METRICS]
    docs = {p.stem: json.loads(p.read_text()) for p in paths}
    for doc in docs.values():
        validate_node_data(doc)
        for gid, g in doc.items():
            for nid in g["results"]:
                assert nid in graphs[gid], (gid, nid)
    # every operator of the model is on the cycles overlay, on the adapter node of that operator
    for sg in m.subgraphs:
        results = docs["cycles"][graph_id(sg.index, sg.name)]["results"]
        assert len(results) == len(sg.operators)
        for op in sg.operators:
            node = graphs[graph_id(sg.index, sg.name)][str(op.index)]
            assert node["label"] == op.op.lower(), (node["label"], op.op)
            la = next(la for la in report.layers if (la.subgraph, la.op_index) == (sg.index, op.index))
            assert results[str(op.index)]["value"] == la.cycles


def test_graph_ids_of_several_subgraphs_match_the_adapter(tmp_path) -> None:
    """Named and unnamed subgraphs: the adapter names graphs after subgraphs, "main"/"subgraph_<i>" without one."""
    import numpy as np
    from modelgen import ModelBuilder, conv_options, quantization

    from hwopt._generated.tflite.BuiltinOptions import BuiltinOptions

    mb = ModelBuilder()
    for name in ("", "", "decoder"):
        sg = mb.subgraph(name)
        x = sg.tensor("in", (1, 4, 4, 4), quant=quantization(0.05, 0))
        w = sg.tensor("w", (4, 3, 3, 4), data=np.arange(144, dtype=np.int8).reshape(4, 3, 3, 4) % 7,
                      quant=quantization(np.full(4, 0.01, np.float32), 0, 0))
        b = sg.tensor("b", (4,), "int32", data=np.zeros(4, np.int32), quant=quantization(np.full(4, 5e-4, np.float32)))
        y = sg.tensor("y", (1, 4, 4, 4), quant=quantization(0.1, 0))
        sg.op("CONV_2D", [x, w, b], [y], options=conv_options(relu=True), options_type=BuiltinOptions.Conv2DOptions,
              version=3)
        sg.io([x], [y])
    path = tmp_path / "three.tflite"
    path.write_bytes(mb.build())
    graphs = adapter_graphs(path)
    assert set(graphs) == {"main", "subgraph_1", "decoder"}
    m = read_model(path)
    report = estimate(m, "ethos-u55-128", engine="analytic")
    write_overlays(tmp_path / "ov", m, report.layers)
    doc = json.loads((tmp_path / "ov" / "cycles.json").read_text())
    assert set(doc) == set(graphs)
    for gid, g in doc.items():
        assert set(g["results"]) == {"0"} and graphs[gid]["0"]["label"] == "conv_2d"


def test_overlay_figures_on_a_vela_estimate(run_cli, example, tmp_path) -> None:
    out = tmp_path / "ov"
    res = run_cli("estimate", str(example), "--target", "ethos-u55-128", "--explorer", str(out), "--json")
    assert res.code == 0, res.err
    report = json.loads(res.out)
    total = report["summary"]["cycles"]
    docs = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert set(docs) == {m.key for m in METRICS}
    m = read_model(example)
    from hwopt.analysis.layers import weight_layers, zero_corrected

    for la in report["layers"]:
        key = str(la["op_index"])
        assert docs["cycles"]["main"]["results"][key]["value"] == la["cycles"]
        assert docs["cycle_share"]["main"]["results"][key]["value"] == pytest.approx(la["cycles"] / total)
        assert docs["placement"]["main"]["results"][key]["value"] == la["placement"]
        assert docs["bound"]["main"]["results"][key]["value"] == la["bound"]
    assert sum(r["value"] for r in docs["cycle_share"]["main"]["results"].values()) == pytest.approx(1.0)
    for wl in weight_layers(m):  # sparsity, distinct values and bits/weight against numpy on the weights
        w = zero_corrected(m, wl)
        key = str(wl.op_index)
        assert docs["sparsity"]["main"]["results"][key]["value"] == pytest.approx(float((w == 0).mean()))
        rows = w.reshape(w.shape[wl.out_axis], -1) if wl.out_axis == 0 else w.reshape(-1, w.shape[-1]).T
        assert docs["distinct_per_channel"]["main"]["results"][key]["value"] == max(len(set(r.tolist())) for r in rows)
        enc = next(la["encoded_weight_bytes"] for la in report["layers"] if la["op_index"] == wl.op_index)
        if enc is not None:
            assert docs["bits_per_weight"]["main"]["results"][key]["value"] == pytest.approx(8 * enc / w.size)
    # deterministic: a second run writes the same bytes
    out2 = tmp_path / "ov2"
    assert run_cli("estimate", str(example), "--target", "ethos-u55-128", "--explorer", str(out2)).code == 0
    for p in out.glob("*.json"):
        assert (out2 / p.name).read_bytes() == p.read_bytes()


def test_compile_writes_overlays(run_cli, example, tmp_path) -> None:
    res = run_cli("compile", str(example), "--target", "ethos-u55-128", "-o", str(tmp_path / "c"),
                  "--explorer", str(tmp_path / "ov"))
    assert res.code == 0, res.err
    report = json.loads((tmp_path / "c" / "report.json").read_text())
    doc = json.loads((tmp_path / "ov" / "cycles.json").read_text())
    assert {int(k): v["value"] for k, v in doc["main"]["results"].items()} == {
        la["op_index"]: la["cycles"] for la in report["layers"]}


def test_explorer_path_that_is_a_file_is_exit_2(run_cli, example, tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = run_cli("estimate", str(example), "--target", "ethos-u55-128", "--explorer", str(blocker))
    assert res.code == 2 and res.err.startswith("hwopt: error: ") and res.err.count("\n") == 1, res.err


# --- hwopt explore in a real browser -----------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_explore_without_model_explorer_is_exit_2(run_cli, example, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "model_explorer", None)  # import fails as if the extra were not installed
    res = run_cli("explore", str(example), "--target", "ethos-u55-128", "--no-browser")
    assert res.code == 2 and "pip install 'hwopt[explorer]'" in res.err and res.err.count("\n") == 1, res.err


def test_explore_on_a_busy_port_is_exit_2(run_cli, example) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        res = run_cli("explore", str(example), "--target", "ethos-u55-128", "--no-browser", "--port",
                      str(s.getsockname()[1]))
    assert res.code == 2 and "is in use" in res.err and res.err.count("\n") == 1, res.err


def test_explore_opens_in_headless_chromium_without_console_errors(example, tmp_path) -> None:
    pytest.importorskip("model_explorer", reason="ai-edge-model-explorer not installed (pip install 'hwopt[explorer]')")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver_path = shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.skip("chromium and chromedriver not installed (apt-get install chromium chromium-driver)")
    port = _free_port()
    log = tmp_path / "explore.log"
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "hwopt", "explore", str(example), "--target", "ethos-u55-128",
                                 "--port", str(port), "--no-browser", "--explorer", str(tmp_path / "ov")],
                                stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
    drv = None
    try:
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            m = re.search(rf"(http://127\.0\.0\.1:{port}/\S*)", log.read_text())
            url = m.group(1) if m else None
            time.sleep(0.5)
        assert url is not None, log.read_text()
        opts = webdriver.ChromeOptions()
        opts.binary_location = chromium
        for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1000"):
            opts.add_argument(arg)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        drv = webdriver.Chrome(service=Service(driver_path), options=opts)
        drv.set_page_load_timeout(60)
        drv.get(url)
        deadline = time.monotonic() + 60
        body = ""
        while time.monotonic() < deadline:  # the graph renders into a canvas once the model and overlays load
            body = drv.execute_script("return document.body ? document.body.innerText : ''")
            if drv.execute_script("return document.querySelectorAll('canvas').length") and "cycles" in body:
                break
            time.sleep(0.5)
        assert "cycles" in body, body[:500]
        # Model Explorer's web app also asks Google's font servers for its typeface; on a machine without
        # internet access that request fails. Only that is excused: script errors and any failed request
        # to the local server still fail the test.
        errors = [e for e in drv.get_log("browser") if e["level"] == "SEVERE" and not (
            e.get("source") == "network" and e["message"].startswith("https://fonts.g"))]
        assert errors == [], errors
    finally:
        if drv is not None:
            drv.quit()
        proc.terminate()
        proc.wait(timeout=30)
