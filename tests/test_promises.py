"""Enforce keeps what it promises: pruned zeros survive clustering by default; a broken promise is exit 1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, CliRunner
from modelgen import int8_conv_model

from hwopt.cli.enforce import EnforceOptions, build_pipeline
from hwopt.engines.enforce import enforce_model
from hwopt.engines.promises import keep_pruned_zeros
from hwopt.format.tflite_io import read_model
from hwopt.passes.cluster import ClusterPass
from hwopt.passes.manager import parse_pipeline
from hwopt.passes.prune import PrunePass

EXAMPLE = ROOT / "hwopt" / "example" / "example_int8.tflite"


def _positive_model() -> bytes:
    """A conv whose weights are all positive: a zero-free centroid pulls pruned zeros up."""
    rng = np.random.default_rng(3)
    return int8_conv_model(rng.integers(1, 128, size=(8, 3, 3, 4), dtype=np.int8), fc=False)


def test_flags_default_to_keeping_zeros() -> None:
    assert build_pipeline(EnforceOptions(sparsity=0.5, clusters=16)) == "prune{sparsity=0.5},cluster{k=16,granularity=stream}"
    assert build_pipeline(EnforceOptions(sparsity=0.5, clusters=16, preserve_sparsity=False)).endswith(
        "preserve_zero=false}")
    resolved = keep_pruned_zeros(parse_pipeline("prune{sparsity=0.5},cluster{k=16}"))
    assert resolved == [PrunePass(sparsity=0.5), ClusterPass(k=16, preserve_zero=True)]
    # Without a prune before it, or when told, clustering is free to move zeros.
    assert keep_pruned_zeros(parse_pipeline("cluster{k=16}")) == [ClusterPass(k=16)]
    assert keep_pruned_zeros(parse_pipeline("prune,cluster{preserve_zero=false}"))[1].preserve_zero is False


def test_sparsity_survives_clustering_by_default() -> None:
    model = read_model(_positive_model())
    _, _, report = enforce_model(model, "prune{sparsity=0.5},cluster{k=1,granularity=tensor}", measure_encoded=False)
    assert not report.failed, report.findings
    assert "preserve_zero=true" in report.pipeline
    (layer,) = report.layers
    assert layer.sparsity_after >= 0.5


def test_a_broken_sparsity_promise_is_an_error_finding(tmp_path: Path) -> None:
    model = read_model(_positive_model())
    _, _, report = enforce_model(model, "prune{sparsity=0.5},cluster{k=1,granularity=tensor,preserve_zero=false}",
                                 measure_encoded=False)
    assert report.failed
    (finding,) = [f for f in report.findings if f.rule == "promise-not-kept"]
    assert finding.message.startswith("CONV_2D #0 has 0.0% zeros, below the requested sparsity 50.0%")


def test_cli_exit_1_and_nothing_written_when_a_promise_breaks(run_cli: CliRunner, tmp_path: Path) -> None:
    src = tmp_path / "m.tflite"
    src.write_bytes(_positive_model())
    out = tmp_path / "o.tflite"
    r = run_cli("enforce", src, "--pipeline", "prune{sparsity=0.5},cluster{k=1,granularity=tensor,preserve_zero=false}",
                "-o", out)
    assert r.code == 1 and "promise-not-kept" in r.out and not out.exists()


def test_compile_exits_1_when_its_pipeline_breaks_a_promise(run_cli: CliRunner, tmp_path: Path) -> None:
    """The exit-code table for compile: a broken promise is an error finding (exit 1), reported in report.json."""
    import json

    src = tmp_path / "m.tflite"
    src.write_bytes(_positive_model())
    r = run_cli("compile", src, "--target", "ethos-u55-128", "-o", tmp_path / "out", "--pipeline",
                "prune{sparsity=0.5},cluster{k=1,granularity=tensor,preserve_zero=false}")
    assert r.code == 1, r.err
    rules = [f["rule"] for f in json.loads((tmp_path / "out" / "report.json").read_text())["findings"]
             if f["severity"] == "error"]
    assert rules == ["promise-not-kept"]


@pytest.mark.parametrize("extra", [[], ["--preserve-sparsity"]])
def test_sparsity_and_clusters_together_keep_every_pruned_layer_at_target(run_cli: CliRunner, tmp_path: Path,
                                                                           extra: list[str]) -> None:
    out = tmp_path / "o.tflite"
    r = run_cli("enforce", EXAMPLE, "--sparsity", "0.5", "--clusters", "16", *extra, "-o", out, "--json")
    assert r.code == 0, r.err
    import json

    rep = json.loads(r.out)
    assert all(la["sparsity_after"] >= 0.5 for la in rep["layers"])
    assert all(la["max_unique_per_channel_after"] <= 16 for la in rep["layers"])
