"""`hwopt sweep`: the same records on every engine, cache and resume, faults, SPEC errors, reports."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from hwopt.sweeps import Progress, Status, build_spec, load_spec, run_sweep
from hwopt.sweeps.local import ProcessPoolEngine, SerialEngine
from tests.conftest import CliRunner
from tests.modelgen import int8_conv_model

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "hwopt" / "example" / "example_int8.tflite"
TARGETS = ["ethos-u55-64", "ethos-u65-256", "ethos-n78-1tops-2ple"]
PIPELINES = {"base": "none", "p60": "prune{sparsity=0.6}"}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three small int8 models in one folder: the bundled example and two generated conv nets."""
    folder = tmp_path_factory.mktemp("models")
    (folder / "a_example.tflite").write_bytes(EXAMPLE.read_bytes())
    (folder / "b_conv8.tflite").write_bytes(int8_conv_model(seed=1, channels=8))
    (folder / "c_conv16.tflite").write_bytes(int8_conv_model(seed=2, channels=16, in_channels=8, fc=False))
    return folder


def _spec_file(folder: Path, models: Path, extra: str = "") -> Path:
    p = folder / "sweep.toml"
    pipes = "\n".join(f'{k} = "{v}"' for k, v in PIPELINES.items())
    p.write_text(f'models = ["{models.as_posix()}/*.tflite"]\ntargets = {json.dumps(TARGETS)}\n{extra}\n'
                 f"[pipelines]\n{pipes}\n", encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def serial(models: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The reference run: every job in this process; (output folder, sweep.json text)."""
    out = tmp_path_factory.mktemp("serial")
    spec = load_spec(_spec_file(out, models))
    result = run_sweep(spec, output=out / "run", engine=SerialEngine())
    assert result.stats.computed == 18 and result.stats.cached == 0
    return out / "run", (out / "run" / "sweep.json").read_text(encoding="utf-8")


def test_records_cover_every_job_sorted(serial: tuple[Path, str]) -> None:
    doc = json.loads(serial[1])
    assert doc["schema"] == "hwopt.sweep/1" and doc["jobs"] == 18 == len(doc["records"])
    keys = [(r["model"], r["pipeline"], r["target"]) for r in doc["records"]]
    assert keys == sorted(keys)
    assert {k[1] for k in keys} == set(PIPELINES) and {k[2] for k in keys} == set(TARGETS)
    assert list(doc["records"][0]) == ["model", "pipeline", "target", "status", "error", "key", "cycles",
                                       "inference_s", "encoded_weight_bytes", "peak_sram_bytes", "flash_bytes",
                                       "cpu_operators", "fidelity"]
    assert all(r["status"] == "ok" and r["error"] is None and r["fidelity"] is None for r in doc["records"])
    assert len({r["key"] for r in doc["records"]}) == 18
    for name in ("sweep.csv", "sweep.md", "sweep.html"):
        assert (serial[0] / name).stat().st_size > 0
    html = (serial[0] / "sweep.html").read_text(encoding="utf-8")
    assert html.count("<svg") == len(TARGETS) + 1  # one front per target and the cross-target chart
    csv_rows = (serial[0] / "sweep.csv").read_text(encoding="utf-8").splitlines()
    assert len(csv_rows) == 19


def test_records_match_the_engines_run_alone(serial: tuple[Path, str], models: Path) -> None:
    """A job's figures are what hwopt estimate and encode give for the enforced model on that target."""
    import hwopt

    doc = json.loads(serial[1])
    rec = next(r for r in doc["records"] if r["model"].endswith("a_example.tflite") and r["pipeline"] == "base"
               and r["target"] == "ethos-u55-64")
    est = hwopt.estimate(models / "a_example.tflite", "ethos-u55-64")
    enc = hwopt.encode(models / "a_example.tflite", "ethos-u55-64")
    assert rec["cycles"] == est.summary.cycles and rec["peak_sram_bytes"] == est.summary.peak_sram_bytes
    assert rec["encoded_weight_bytes"] == enc.summary.encoded_bytes
    for r in doc["records"]:  # on Ethos-U hwopt's streams are Vela's own: the same total as Vela reports
        if r["target"].startswith("ethos-u"):
            vela = hwopt.estimate(models / Path(r["model"]).name, r["target"]) if r["pipeline"] == "base" else None
            if vela is not None:
                assert r["encoded_weight_bytes"] == vela.summary.encoded_weight_bytes, r
    assert rec["cpu_operators"] == est.summary.cpu_ops
    assert rec["inference_s"] == pytest.approx(est.summary.inference_s, rel=1e-5)
    from hwopt.targets import resolve_target

    for r in doc["records"]:  # latency keeps 6 significant digits even at microseconds
        assert r["inference_s"] == pytest.approx(r["cycles"] / resolve_target(r["target"]).clock_hz, rel=1e-5)
    # pruning 60% of the weights shrinks the encoded streams on every target
    for t in TARGETS:
        pick = {r["pipeline"]: r for r in doc["records"] if r["model"].endswith("b_conv8.tflite") and r["target"] == t}
        assert pick["p60"]["encoded_weight_bytes"] < pick["base"]["encoded_weight_bytes"]
    # the cross-target front holds every model's fastest pair
    for model, best in doc["pareto"]["fastest"].items():
        assert best in [dict(p) for p in doc["pareto"]["per_model"][model]]


def test_two_workers_and_rerun_from_cache(serial: tuple[Path, str], models: Path, tmp_path: Path) -> None:
    spec = load_spec(_spec_file(tmp_path, models))
    first = run_sweep(spec, output=tmp_path / "run", engine=ProcessPoolEngine(2))
    text = (tmp_path / "run" / "sweep.json").read_text(encoding="utf-8")
    assert text == serial[1]
    again = run_sweep(spec, output=tmp_path / "run", engine=ProcessPoolEngine(2))
    assert again.stats.cached == 18 and again.stats.computed == 0
    assert first.stats.cpu_seconds > 0 and again.stats.cpu_seconds == 0
    assert again.report == first.report
    assert (tmp_path / "run" / "sweep.json").read_text(encoding="utf-8") == serial[1]


def test_killed_worker_job_is_retried(serial: tuple[Path, str], models: Path, tmp_path: Path) -> None:
    engine = ProcessPoolEngine(2)
    killed: list[int] = []

    def kill_one(p: Progress) -> None:
        # a worker that has just sent its result is not retried: kill again until one job is
        pids = engine.busy_pids()
        if engine.retried == 0 and len(killed) < 5 and p.done >= 1 and pids:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    spec = load_spec(_spec_file(tmp_path, models))
    result = run_sweep(spec, output=tmp_path / "run", engine=engine, progress=kill_one)
    assert killed and result.stats.retried >= 1, killed
    assert all(r.status is Status.OK for r in result.report.records), result.report.failures
    assert (tmp_path / "run" / "sweep.json").read_text(encoding="utf-8") == serial[1]


def _ray_task_workers() -> list[int]:
    """Process ids of this test's Ray workers running a sweep task (their title is `ray::execute`)."""
    parents: dict[int, int] = {}
    titles: dict[int, str] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parents[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                titles[int(d.name)] = (d / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            except (OSError, IndexError, ValueError):
                continue

    def mine(pid: int) -> bool:
        while pid > 1:
            pid = parents.get(pid, 0)
            if pid == os.getpid():
                return True
        return False

    return sorted(pid for pid, title in titles.items() if title.startswith("ray::execute") and mine(pid))


def test_ray_two_node_cluster_gives_the_same_json(serial: tuple[Path, str], models: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="ray (the optional hwopt[scale] extra) is not installed")
    from ray.cluster_utils import Cluster

    from hwopt.sweeps.ray_engine import RayEngine

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        spec = load_spec(_spec_file(tmp_path, models))
        engine = RayEngine()
        killed: list[int] = []

        def kill_a_ray_worker(p: Progress) -> None:  # a lost worker process: Ray runs its task again
            busy = _ray_task_workers()
            if not killed and p.done >= 2 and busy:
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])

        run_sweep(spec, output=tmp_path / "run", engine=engine, progress=kill_a_ray_worker)
        assert engine.tasks == 18 and killed
        assert (tmp_path / "run" / "sweep.json").read_text(encoding="utf-8") == serial[1]
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_resume_recomputes_only_missing(serial: tuple[Path, str], models: Path, tmp_path: Path,
                                        run_cli: CliRunner) -> None:
    spec_file = _spec_file(tmp_path, models)
    out = tmp_path / "run"
    assert run_cli("sweep", spec_file, "-o", out, "--workers", "1").code == 0
    # an interrupted sweep: three results never written, no reports yet
    cached = sorted((out / "cache").rglob("*.json"))
    assert len(cached) == 18
    for p in cached[:3]:
        p.unlink()
    (out / "sweep.json").unlink()
    res = run_cli("sweep", "-o", out, "--resume", "--workers", "1")
    assert res.code == 0, res.err
    assert "3 computed, 15 from the cache" in res.out
    # not a terminal: quiet progress lines, the first after the cache was read, the last at the end
    lines = res.err.splitlines()
    assert lines[0] == "hwopt: sweep: 15/18 jobs (15 cached, 0 failed)"
    assert lines[-1] == "hwopt: sweep: 18/18 jobs (15 cached, 0 failed)" and len(lines) <= 4
    assert (out / "sweep.json").read_text(encoding="utf-8") == serial[1]


def test_failed_jobs_are_records_and_exit_1(models: Path, tmp_path: Path, run_cli: CliRunner) -> None:
    float_model = ROOT.parent / "shared" / "models" / "hello_world_float.tflite"
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer at all")
    res = run_cli("sweep", "-o", tmp_path / "run", "--model", models / "b_conv8.tflite", "--model", bad,
                  "--target", "ethos-u55-128", "--pipeline", "base=none", "--pipeline", "bad=prune{sparsity=2}",
                  "--workers", "1", "--json")
    assert res.code == 1
    doc = json.loads(res.out)
    by = {(Path(r["model"]).name, r["pipeline"]): r for r in doc["records"]}
    assert by[("b_conv8.tflite", "base")]["status"] == "ok"
    assert by[("b_conv8.tflite", "bad")]["status"] == "failed" and "sparsity" in by[("b_conv8.tflite", "bad")]["error"]
    assert by[("bad.tflite", "base")]["status"] == "failed" and by[("bad.tflite", "base")]["cycles"] is None
    text = run_cli("sweep", "-o", tmp_path / "run", "--model", models / "b_conv8.tflite", "--model", bad,
                   "--target", "ethos-u55-128", "--pipeline", "base=none", "--pipeline", "bad=prune{sparsity=2}",
                   "--workers", "1")
    assert text.code == 1 and text.out.count("failed: ") == 3
    assert "0 computed, 4 from the cache" in text.out  # a job's own failure is cached too
    if float_model.is_file():
        res = run_cli("sweep", "-o", tmp_path / "f", "--model", float_model, "--target", "ethos-u55-128", "--json",
                      "--workers", "1")
        assert res.code == 1 and "float" in json.loads(res.out)["records"][0]["error"]


@pytest.mark.parametrize(("extra", "message"), [
    ('colour = "blue"', "unknown key 'colour'"),
    ('engine = "fast"', "engine must be one of"),
])
def test_bad_spec_keys(models: Path, tmp_path: Path, run_cli: CliRunner, extra: str, message: str) -> None:
    res = run_cli("sweep", _spec_file(tmp_path, models, extra), "-o", tmp_path / "o")
    assert res.code == 2 and res.out == ""
    assert res.err.count("\n") == 1 and res.err.startswith("hwopt: error: ") and message in res.err


@pytest.mark.parametrize(("text", "message"), [
    ('models = ["nothing-here/*.tflite"]\ntargets = ["ethos-u55-128"]\n', "no models matched"),
    ('models = ["{m}"]\ntargets = ["ethos-u99-7"]\n', "target 'ethos-u99-7'"),
    ('models = ["{m}"]\n', "missing key 'targets'"),
    ('models = ["{m}"\n', "not valid TOML"),
    ('models = ["{m}"]\ntargets = ["ethos-n78-1tops-2ple"]\nengine = "vela"\n', "Vela does not compile"),
    ('models = ["{m}"]\ntargets = ["ethos-u55-128"]\n[pipelines]\nx = ""\n', "non-empty pipeline string"),
])
def test_bad_spec_one_line_exit_2(models: Path, tmp_path: Path, run_cli: CliRunner, text: str, message: str) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text(text.replace("{m}", (models / "b_conv8.tflite").as_posix()), encoding="utf-8")
    res = run_cli("sweep", spec, "-o", tmp_path / "o")
    assert res.code == 2 and res.err.count("\n") == 1 and message in res.err, res.err
    assert run_cli("sweep", tmp_path / "absent.toml", "-o", tmp_path / "o").code == 2
    assert run_cli("sweep", "-o", tmp_path / "o").code == 2
    assert "no sweep to resume" in run_cli("sweep", "-o", tmp_path / "empty", "--resume").err


def test_tree_folder_and_fidelity_through_the_api(models: Path, tmp_path: Path) -> None:
    """A `hwopt tree` output folder feeds its available leaves; data gives fidelity (LiteRT computed here too)."""
    import hwopt
    from hwopt.engines.fidelity import Runner

    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "baseline.tflite").write_bytes((models / "b_conv8.tflite").read_bytes())
    (tree / "pruned.tflite").write_bytes((models / "b_conv8.tflite").read_bytes())
    leaves = [{"name": "baseline", "available": True, "file": "baseline.tflite"},
              {"name": "pruned", "available": True, "file": "pruned.tflite"},
              {"name": "qat", "available": False, "file": None}]
    (tree / "tree.json").write_text(json.dumps({"schema": "hwopt.tree/1", "leaves": leaves}), encoding="utf-8")
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=(12, 1, 8, 8, 4), dtype=np.int8)
    runner = Runner((models / "b_conv8.tflite").read_bytes())
    preds = np.array([int(np.argmax(runner.invoke([s])[0])) for s in x])
    labels = preds.copy()
    labels[:3] = (labels[:3] + 1) % 4  # the model is right on 9 of 12
    np.savez(tmp_path / "data.npz", input=x.reshape(12, 8, 8, 4), labels=labels)
    result = hwopt.sweep(models=[str(tree)], targets=["ethos-u55-128"], data=tmp_path / "data.npz",
                         pipelines={"base": "none", "p60": "prune{sparsity=0.6}"}, workers=1)
    recs = result.report.records
    assert [(Path(r.model).name, r.pipeline) for r in recs] == [("baseline.tflite", "base"), ("baseline.tflite", "p60"),
                                                                ("pruned.tflite", "base"), ("pruned.tflite", "p60")]
    base = recs[0].fidelity
    assert base is not None and base.samples == 12 and base.top1_agreement == 1.0 and base.min_cosine == 1.0
    assert base.accuracy_before == base.accuracy_after == pytest.approx(0.75)
    assert recs[1].fidelity is not None and recs[1].fidelity.min_cosine < 1.0
    assert result.report.pareto.objectives == ["encoded_weight_bytes", "inference_s", "fidelity"]
    assert recs[0].key == recs[2].key  # the same bytes under two names: one cache key
    assert result.stats.computed == 2


def test_spec_axes_validation(models: Path) -> None:
    from hwopt.errors import UsageError

    with pytest.raises(UsageError, match="no models given"):
        build_spec([], ["ethos-u55-128"], {})
    spec = build_spec([str(models / "b_conv8.tflite")], ["ethos-u55-128", "ethos-u55-128"], {})
    assert spec.jobs == 1 and spec.pipelines == (("none", "none"),)


def test_pareto_fronts_by_hand() -> None:
    """Fronts worked out by hand: size and latency lower, fidelity higher; equal points both stay."""
    from hwopt.sweeps.pareto import pareto
    from hwopt.sweeps.records import SweepFidelity, SweepRecord

    def rec(model: str, pipe: str, target: str, size: int, ms: float, score: float | None) -> SweepRecord:
        fid = None if score is None else SweepFidelity(8, score, None, None, 1.0, None)
        return SweepRecord(model, pipe, target, Status.OK, None, "k", 1, ms / 1e3, size, 0, 0, 0, fid)

    recs = [rec("m", "a", "t1", 100, 2.0, 1.0), rec("m", "b", "t1", 50, 2.0, 0.9), rec("m", "c", "t1", 60, 3.0, 0.8),
            rec("m", "a", "t2", 100, 1.0, 1.0), rec("m", "b", "t2", 50, 1.5, 0.9), rec("m", "c", "t2", 50, 1.5, 0.9)]
    p = pareto(recs)
    assert p.objectives == ["encoded_weight_bytes", "inference_s", "fidelity"]
    assert [x.pipeline for x in p.per_target["t1"]] == ["a", "b"]  # c: bigger, slower and worse than b
    assert [x.pipeline for x in p.per_target["t2"]] == ["a", "b", "c"]
    # across targets (b, t1) falls: (b, t2) is as small and as faithful, and faster
    assert [(x.pipeline, x.target) for x in p.per_model["m"]] == [("a", "t2"), ("b", "t2"), ("c", "t2")]
    assert (p.fastest["m"].pipeline, p.fastest["m"].target) == ("a", "t2")
    no_fid = pareto([rec("m", "a", "t1", 100, 2.0, None), rec("m", "b", "t1", 50, 2.0, None)])
    assert no_fid.objectives == ["encoded_weight_bytes", "inference_s"]
    assert [x.pipeline for x in no_fid.per_target["t1"]] == ["b"]


def test_cli_flag_errors(models: Path, tmp_path: Path, run_cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    m = models / "b_conv8.tflite"
    spec = _spec_file(tmp_path, models)
    cases = [
        (("--model", m, "--target", "ethos-u55-128", "--pipeline", "p50"), "NAME=SPEC"),
        ((spec, "--model", m), "not both"),
        ((spec, "--engine", "analytic"), "--engine goes with"),
        (("--model", m, "--target", "ethos-u55-128", "--workers", "0"), "at least 1"),
    ]
    for argv, message in cases:
        res = run_cli("sweep", "-o", tmp_path / "o", *argv)
        assert res.code == 2 and res.err.count("\n") == 1 and message in res.err, (argv, res.err)
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # as if the scale extra were not installed
    res = run_cli("sweep", "-o", tmp_path / "o", "--model", m, "--target", "ethos-u55-128", "--ray")
    assert res.code == 2 and "hwopt[scale]" in res.err


def test_which_failures_are_cached(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A job's own error is cached; a native crash or a bug may not recur and is computed again."""
    from hwopt.errors import NativeCodeError, UnsupportedModelError
    from hwopt.sweeps import job as job_mod
    from hwopt.sweeps.cache import ResultCache
    from hwopt.targets import resolve_target

    cache = ResultCache(tmp_path)
    for i, (exc, cached) in enumerate(((UnsupportedModelError("float model"), True),
                                       (NativeCodeError("Vela crashed"), False), (ZeroDivisionError("bug"), False))):
        j = job_mod.Job(f"{i}" * 64, "m", "none", resolve_target("ethos-u55-128"), "vela", None)

        def boom(*_: object, e: Exception = exc) -> None:
            raise e

        monkeypatch.setattr(job_mod, "_measure", boom)
        out = job_mod.execute(j, b"")
        assert out.status is Status.FAILED and out.cacheable is cached
        cache.put(out)
        assert (cache.get(j.key) is not None) is cached
