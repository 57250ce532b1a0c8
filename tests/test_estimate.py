"""hwopt estimate: Vela-engine totals against Vela itself, analytic engine coverage, CLI contract."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hwopt import estimate
from hwopt.engines.estimate import SCHEMA
from hwopt.errors import CompileError, TargetError, UnsupportedModelError, UsageError
from hwopt.targets import list_targets, resolve_target

RESNET8 = "mlperftiny_resnet8_int8.tflite"
U_CONFIGS = [n for n in list_targets() if n.startswith("ethos-u")]
N_CONFIGS = [n for n in list_targets() if n.startswith("ethos-n78")]


def vela_ini_sysconfig(accelerator: str, macs: int, cores: int, system: str, mode: str) -> str:
    """The system-config text exactly as `vela`'s main() builds it from the shipped vela.ini."""
    import ethosu

    ini = (Path(next(iter(ethosu.__path__))) / "config_files" / "Arm" / "vela.ini").read_text(encoding="utf-8")
    return (f"[architecture]\nmacs={macs}\ncores={cores}\n[vela]\nsystem_config_name={system}\n"
            f"memory_mode_name={mode}\n" + ini)


@pytest.fixture(scope="module")
def resnet8(shared_models: Path) -> Path:
    return shared_models / RESNET8


@pytest.mark.parametrize("name", ["ethos-u55-128", "ethos-u65-512", "ethos-u85-256"])
def test_vela_totals_equal_perf_report(resnet8: Path, name: str) -> None:
    """Totals and per-layer sums equal Regor's own report for Vela's vela.ini configuration."""
    from ethosu import regor

    from hwopt._quiet import captured_fds
    from hwopt.targets.ethos_u.vela_config import options_text

    t = resolve_target(name)
    assert t.system is not None and t.memory_mode is not None
    report = estimate(resnet8, t, engine="vela")
    arch = "".join(p.capitalize() for p in name.split("-")[:-1])
    sysconfig = vela_ini_sysconfig(name, t.npu.macs, t.npu.cores, t.system.name, t.memory_mode.name)
    with captured_fds():
        ref = regor.compile(arch, resnet8.read_bytes(), "TFLITE", sysconfig, options=options_text(t))
    perf = ref.perf_report
    s = report.summary
    assert (s.cycles, s.npu_cycles, s.macs, s.encoded_weight_bytes) == (
        perf.totalCycles, perf.npuCycles, perf.macCount, perf.encodedWeights)
    assert s.peak_sram_bytes == perf.memories["Sram"].peakUsage
    assert sum(la.cycles for la in report.layers) == perf.totalCycles
    assert sum(la.macs for la in report.layers) == perf.macCount
    assert report._vela.model_bytes == ref.model  # the same compiled model
    assert s.inference_s == pytest.approx(perf.totalCycles / t.clock_hz)


@pytest.mark.slow
def test_vela_totals_equal_vela_cli_summary(resnet8: Path, tmp_path: Path) -> None:
    """A bare `vela --accelerator-config ethos-u55-128` run (subprocess) gives the same totals."""
    vela = Path(sys.executable).with_name("vela")
    cmd = [str(vela), str(resnet8), "--accelerator-config", "ethos-u55-128", "--output-dir", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (summary,) = tmp_path.glob("*_summary_*.csv")
    row = next(csv.DictReader(summary.open()))
    report = estimate(resnet8, "ethos-u55-128", engine="vela")
    s = report.summary
    vr = report._vela.perf
    assert s.cycles == int(float(row["cycles_total"]))
    assert s.npu_cycles == int(float(row["cycles_npu"]))
    assert vr.access_cycles("Sram") == int(float(row["cycles_sram_access"]))
    assert vr.access_cycles("OffChipFlash") == int(float(row["cycles_off_chip_flash_access"]))
    assert s.macs == int(row["nn_macs"])
    assert s.encoded_weight_bytes == int(row["total_npu_encoded_weights"])
    assert s.peak_sram_bytes / 1024 == pytest.approx(float(row["sram_memory_used"]))
    assert s.inference_s == pytest.approx(float(row["inference_time"]), rel=1e-9)
    assert (row["system_config"], row["memory_mode"]) == ("Ethos_U55_High_End_Embedded", "Shared_Sram")
    (compiled,) = tmp_path.glob("*_vela.tflite")
    assert compiled.read_bytes() == report._vela.model_bytes


def test_vela_rows_map_to_input_operators(shared_models: Path) -> None:
    """ds_cnn_l: QUANTIZE/DEQUANTIZE at the float edges run on the CPU, reshapes vanish, convs on the NPU."""
    from hwopt.format.tflite_io import read_model

    path = shared_models / "ds_cnn_l_quantized.tflite"
    report = estimate(path, "ethos-u55-128", engine="vela")
    ops = [op.op for op in read_model(path).subgraphs[0].operators]
    assert [la.op for la in report.layers] == ops
    placement = {la.op_index: la.placement for la in report.layers}
    assert placement[0] == "cpu" and ops[0] == "QUANTIZE"
    assert placement[len(ops) - 1] == "cpu" and ops[-1] == "DEQUANTIZE"
    assert report.summary.cpu_ops == 2
    convs = [la for la in report.layers if la.op == "CONV_2D"]
    assert all(la.placement == "npu" and la.cycles > 0 and la.encoded_weight_bytes for la in convs)
    assert all(la.weight_format == "Default" for la in convs)
    for la in report.layers:  # op cycles = max of NPU and access cycles, as Vela defines them
        if la.cycles:
            assert la.cycles >= max(la.npu_cycles, *la.memory_cycles.values())


def slow_flash_toml(tmp_path: Path) -> Path:
    p = tmp_path / "slow-u55.toml"
    p.write_text('extends = "ethos-u55-128"\n[target]\nname = "slow-u55"\n'
                 "[system_config.Ethos_U55_High_End_Embedded]\ncore_clock_hz = 200e6\n"
                 "[system_config.Ethos_U55_High_End_Embedded.OffChipFlash]\nclock_scale = 0.03125\n", encoding="utf-8")
    return p


@pytest.mark.parametrize("engine", ["vela", "analytic"])
def test_user_descriptor_changes_estimate(shared_models: Path, tmp_path: Path, engine: str) -> None:
    """U55-128 at 200 MHz with 4x slower flash: longer inference, flash-bound layers take more cycles."""
    model = shared_models / "mlperftiny_ad01_int8.tflite"  # fully connected: weights stream from flash
    base = estimate(model, "ethos-u55-128", engine=engine)
    slow = estimate(model, str(slow_flash_toml(tmp_path)), engine=engine)
    assert slow.target == "slow-u55" and slow.clock_hz == 200e6
    assert slow.summary.inference_s > base.summary.inference_s * 2.5  # 2.5x clock and more cycles
    flash_bound = [la for la in base.layers if la.memory_cycles.get("OffChipFlash", 0) >= la.cycles > 0]
    assert flash_bound, "the FC layers should be flash-bound"
    by_index = {la.op_index: la for la in slow.layers}
    for la in flash_bound:
        assert by_index[la.op_index].cycles > la.cycles * 3  # 4x less flash bandwidth


@pytest.mark.slow
@pytest.mark.parametrize("name", U_CONFIGS + N_CONFIGS)
def test_analytic_covers_every_int8_model(int8_models: list[Path], name: str) -> None:
    target = resolve_target(name)
    for path in int8_models:
        report = estimate(path, target, engine="analytic")
        s = report.summary
        if name.startswith("ethos-n78") and s.npu_ops == 0:
            # The N78 takes int8/uint8 feature maps only: an int16 model runs wholly on the CPU.
            assert all(la.placement == "cpu" for la in report.layers) and s.cycles == 0, path.name
            continue
        assert s.cycles > 0 and s.inference_s > 0, path.name
        assert s.cycles == sum(la.cycles for la in report.layers)
        for la in report.layers:
            assert la.cycles >= 0 and la.bound in ("compute", "memory", "weights", "none", "cpu")
            if la.placement == "npu" and la.cycles:
                assert la.cycles >= la.npu_cycles


def test_analytic_tracks_vela_on_mobilenet(shared_models: Path) -> None:
    """The analytic total is within 25% of Vela on MobileNet-v2 for U55-128 (validation bar)."""
    path = shared_models / "mobilenet_v2_1.0_224_INT8.tflite"
    vela = estimate(path, "ethos-u55-128", engine="vela").summary.cycles
    ana = estimate(path, "ethos-u55-128", engine="analytic").summary.cycles
    assert abs(ana - vela) / vela < 0.25


def test_analytic_compute_formulas_by_hand(shared_models: Path) -> None:
    """N78 4TOPS-4PLE, resnet8's first conv (3x3, 32x32x3 -> 32x32x16): the estimator's formulas by hand."""
    from hwopt.targets.ethos_n.perf import mce_direct_cycles

    t = resolve_target("ethos-n78-4tops-4ple")
    assert t.n78 is not None
    # Direct: 9 * 32 * 32 * roundup(3, 16) * roundup(16, 16) / 2048 MACs per cycle = 1152.
    assert mce_direct_cycles(t.n78, (3, 3), (32, 32, 16), 3, False) == 1152
    # Winograd 2x2 with 8x8 blocks: 16x16 output tiles x 16 MACs = 4096 MAC ops per OFM, times
    # roundup(3, 16) / (16 IFMs x 8 MACs) = 512 cycles for the one OFM per OG; the weight transform
    # (16 blocks x 3 IFMs x 2) is less. Winograd is cheaper, so the library (and hwopt) use it.
    first = estimate(shared_models / RESNET8, t, engine="analytic").layers[0]
    assert first.op == "CONV_2D" and first.passes[0].mce_cycles == 512
    # PLE passthrough: 8x8 blocks over 32x32 -> 64 patches x ceil(16 / 16 lanes) x 6 cycles, plus
    # 16 blocks x 10 + (16 / multiplier 4) x 100.
    assert first.passes[0].ple_cycles == 64 * 6 + 16 * 10 + 4 * 100


def test_bigger_npu_is_not_slower(shared_models: Path) -> None:
    path = shared_models / "person_detect.tflite"
    cycles = [estimate(path, n, engine="analytic").summary.cycles for n in
              ("ethos-u55-32", "ethos-u55-64", "ethos-u55-128", "ethos-u55-256")]
    assert cycles == sorted(cycles, reverse=True)
    n78 = [estimate(path, n, engine="analytic").summary.cycles for n in
           ("ethos-n78-1tops-2ple", "ethos-n78-2tops-2ple", "ethos-n78-4tops-2ple", "ethos-n78-8tops-2ple")]
    assert n78 == sorted(n78, reverse=True)


def test_errors(shared_models: Path) -> None:
    with pytest.raises(UsageError, match="Ethos-N78"):
        estimate(shared_models / RESNET8, "ethos-n78-4tops-4ple", engine="vela")
    with pytest.raises(UsageError, match="unknown engine"):
        estimate(shared_models / RESNET8, "ethos-u55-128", engine="fast")
    with pytest.raises(UnsupportedModelError, match="already compiled by Vela"):
        estimate(shared_models / "person_detect_vela.tflite", "ethos-u55-128", engine="vela")
    with pytest.raises(UnsupportedModelError, match="float model"):
        estimate(shared_models / "hello_world_float.tflite", "ethos-u55-128", engine="analytic")
    with pytest.raises(TargetError):
        estimate(shared_models / RESNET8, "ethos-u99-1")


def test_compile_error_is_one_clear_message(shared_models: Path, monkeypatch: pytest.MonkeyPatch,
                                           capfd: pytest.CaptureFixture[str]) -> None:
    """Regor raising (after printing on the C++ side) becomes one CompileError; nothing leaks to stdout."""
    import os

    from ethosu import regor

    from hwopt.targets.ethos_u import vela_engine

    def failing(*args: object, **kwargs: object) -> None:
        os.write(1, b"Tensor 'x' has a dynamic signature in axis 0.\n")
        os.write(2, b"Error: Unsupported graph topology in subgraph 0\n")
        raise RuntimeError("compilation failed")

    monkeypatch.setattr(regor, "compile", failing)
    monkeypatch.setenv("HWOPT_WORKER", "inline")  # the patched Regor lives in this process
    with pytest.raises(CompileError) as info:
        vela_engine.compile_model((shared_models / RESNET8).read_bytes(), resolve_target("ethos-u55-128"))
    assert str(info.value) == "Vela rejected the model: Error: Unsupported graph topology in subgraph 0"
    out, err = capfd.readouterr()
    assert out == "" and err == ""


# --- CLI ------------------------------------------------------------------------------------------

def test_cli_json_contract(run_cli, shared_models: Path) -> None:  # type: ignore[no-untyped-def]
    r = run_cli("estimate", shared_models / RESNET8, "--target", "ethos-u55-128", "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["schema"] == SCHEMA and data["target"] == "ethos-u55-128" and data["engine"] == "vela"
    layer_keys = {"subgraph": int, "op_index": int, "op": str, "placement": str, "cycles": int, "npu_cycles": int,
                  "macs": int, "sram_bytes": int, "bound": str}
    for la in data["layers"]:
        for key, typ in layer_keys.items():
            assert isinstance(la[key], typ), key
        assert la["placement"] in ("npu", "cpu")
        assert la["encoded_weight_bytes"] is None or isinstance(la["encoded_weight_bytes"], int)
    summary = data["summary"]
    for key, typ in (("cycles", int), ("inference_s", float), ("inferences_per_second", float),
                     ("peak_sram_bytes", int), ("macs", int)):
        assert isinstance(summary[key], typ), key
    assert summary["cycles"] == sum(la["cycles"] for la in data["layers"])
    # deterministic: the same run gives byte-identical JSON
    assert run_cli("estimate", shared_models / RESNET8, "--target", "ethos-u55-128", "--json").out == r.out


def test_cli_table_and_analytic(run_cli, shared_models: Path) -> None:  # type: ignore[no-untyped-def]
    r = run_cli("estimate", shared_models / RESNET8, "--target", "ethos-u65-256", "--engine", "analytic")
    assert r.code == 0 and "CONV_2D" in r.out and "inferences/s" in r.out
    n = run_cli("estimate", shared_models / RESNET8, "--target", "ethos-n78-4tops-4ple", "--json")
    assert n.code == 0 and json.loads(n.out)["engine"] == "analytic"  # N78 defaults to the analytic engine
    s = run_cli("estimate", shared_models / RESNET8, "--target", "ethos-u55-128", "--system-config",
                "Ethos_U55_Deep_Embedded", "--memory-mode", "Sram_Only", "--json")
    assert s.code == 0
    data = json.loads(s.out)
    assert (data["system_config"], data["memory_mode"], data["clock_hz"]) == (
        "Ethos_U55_Deep_Embedded", "Sram_Only", 200e6)


@pytest.mark.parametrize(("args", "message"), [
    (["--target", "nope"], "unknown target 'nope'"),
    (["--target", "ethos-n78-1tops-2ple", "--engine", "vela"], "use --engine analytic"),
    (["--target", "ethos-u55-128", "--memory-mode", "Nope"], "unknown memory mode"),
])
def test_cli_usage_errors_exit_2(run_cli, shared_models: Path, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    r = run_cli("estimate", shared_models / RESNET8, *args)
    assert r.code == 2 and r.out == ""
    assert r.err.startswith("hwopt: error: ") and message in r.err and r.err.count("\n") == 1


@pytest.mark.parametrize("model", ["person_detect_vela.tflite", "hello_world_float.tflite"])
def test_cli_unsupported_models_exit_2(run_cli, shared_models: Path, model: str) -> None:  # type: ignore[no-untyped-def]
    r = run_cli("estimate", shared_models / model, "--target", "ethos-u55-128")
    assert r.code == 2 and r.err.startswith("hwopt: error: ") and r.err.count("\n") == 1


def test_cli_bad_descriptor_exit_2(run_cli, shared_models: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.toml"
    bad.write_text('extends = "ethos-u55-128"\n[npu]\nturbo = true\n', encoding="utf-8")
    r = run_cli("estimate", shared_models / RESNET8, "--target", bad)
    assert r.code == 2 and "bad.toml" in r.err and "[npu] unknown key 'turbo'" in r.err


def test_cli_missing_model_exit_2(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = run_cli("estimate", tmp_path / "none.tflite", "--target", "ethos-u55-128")
    assert r.code == 2 and r.err.startswith("hwopt: error: ")


# --- analytic accuracy against Vela -------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", ["ethos-u55-128", "ethos-u65-256", "ethos-u85-256"])
def test_analytic_meets_accuracy_bar(int8_models: list[Path], name: str) -> None:
    """Per-layer analytic cycles against Vela's (the golden) over every shared int8 model, pooled:
    median |rel err| <= 20% and Spearman rank correlation >= 0.9."""
    import statistics

    from scipy.stats import spearmanr

    vela_cycles: list[float] = []
    ana_cycles: list[float] = []
    for model in int8_models:
        vela = estimate(model, name, engine="vela")
        ana = {la.op_index: la for la in estimate(model, name, engine="analytic").layers}
        for la in vela.layers:
            if la.placement == "npu" and la.cycles > 0:
                vela_cycles.append(float(la.cycles))
                ana_cycles.append(float(ana[la.op_index].cycles))
    rel = [abs(a - v) / v for a, v in zip(ana_cycles, vela_cycles, strict=True)]
    assert len(rel) > 300
    assert statistics.median(rel) <= 0.20
    assert spearmanr(vela_cycles, ana_cycles).statistic >= 0.9


def test_u85_channel_bandwidth_by_hand() -> None:
    """U85-256 on SYS_DRAM_Mid: bursts in flight = min(read buffer / burst, 0.8 x max_reads x ports)."""
    from hwopt.targets.ethos_u.u85 import Channel, channel_bandwidth

    t = resolve_target("ethos-u85-256")
    # DRAM: 128-byte bursts = 8 words; weight read buffer 128 words -> 16 bursts (< 0.8 x 64); 500-cycle latency
    assert channel_bandwidth(t, "Dram", Channel.WEIGHT) == pytest.approx(128 * 16 / 500 * 0.8)
    # the 16-word scale buffer holds 2 bursts
    assert channel_bandwidth(t, "Dram", Channel.SCALE) == pytest.approx(128 * 2 / 500 * 0.8)
    # SRAM: 64-byte bursts = 4 words; 0.8 x 8 reads x 2 ports = 12.8 in flight (< 128 / 4); 32-cycle latency
    assert channel_bandwidth(t, "Sram", Channel.IFM) == pytest.approx(64 * 12.8 / 32 * 0.8)
    assert channel_bandwidth(t, "Sram", Channel.WRITE) == pytest.approx(64 * 12.8 / 32 * 0.8)
    # U55 descriptors are unaffected: never above the port's peak
    assert channel_bandwidth(t, "Sram", Channel.IFM) < t.bandwidth("Sram")


def test_u85_dram_terms_match_vela(resnet8: Path) -> None:
    """resnet8 on U85-256: the NHWC graph input read from DRAM in short bursts (first conv) and the
    per-block scale re-reads of the strided 1x1 conv (op 6) cost what Vela charges DRAM for them
    (the structural DRAM term, before calibration)."""
    from hwopt.format.tflite_io import read_model
    from hwopt.targets.ethos_u.analytic import structural_cost
    from hwopt.targets.ethos_u.placement import ethos_u_geometry

    t = resolve_target("ethos-u85-256")
    vela = {la.op_index: la for la in estimate(resnet8, t.name, engine="vela").layers}
    geo = {g.op_index: g for g in ethos_u_geometry(read_model(resnet8), t.family)}
    for i in (0, 6):
        assert vela[i].memory_cycles["Dram"] > 3 * vela[i].npu_cycles / 4  # DRAM-dominated in Vela
        dram = structural_cost(geo[i], t).memory_cycles["Dram"]
        assert dram == pytest.approx(vela[i].memory_cycles["Dram"], rel=0.01)


def test_u85_chains_residual_adds(resnet8: Path) -> None:
    """U85 chains each residual ADD onto the conv before it (no pass of its own); U55 runs it as a pass."""
    from hwopt.format.tflite_io import read_model
    from hwopt.targets import Family
    from hwopt.targets.ethos_u.placement import chained_ops

    sg = read_model(resnet8).subgraphs[0]
    adds = {op.index for op in sg.operators if op.op == "ADD"}
    assert set(chained_ops(sg, Family.ETHOS_U85)) == adds
    assert chained_ops(sg, Family.ETHOS_U55) == {}
    vela = {la.op_index: la.cycles for la in estimate(resnet8, "ethos-u85-256", engine="vela").layers}
    ana = {la.op_index: la.cycles for la in estimate(resnet8, "ethos-u85-256", engine="analytic").layers}
    u55 = {la.op_index: la.cycles for la in estimate(resnet8, "ethos-u55-128", engine="analytic").layers}
    for i in adds:
        assert vela[i] == 0 and ana[i] == 0 and u55[i] > 0
