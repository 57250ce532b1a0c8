"""Structure-aware fuzzing of every command: 2,000 mutated models (object-tree edits of real models).

Each case runs one sampled command in-process and must end in exit 0/1/2 with no traceback, no
native crash or hang left to the isolation worker, and its input file unchanged. tools/fuzz.py
runs the long campaign (20,000+ cases, several commands per case).
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
import structfuzz as sf
from conftest import ROOT, shared_models_dir

CASES = 2000
SEED = 20261130
SOURCES = ("hello_world_int8.tflite", "micro_speech_quantized.tflite", "ds_cnn_s_quantized_int16.tflite")


@pytest.mark.slow
def test_structure_fuzz_every_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HWOPT_WORKER_TIMEOUT", str(sf.CASE_SECONDS - 5))
    sources = sf.load_sources(ROOT / "hwopt" / "example" / "example_int8.tflite", shared_models_dir(), SOURCES)
    cases = sf.cases(sources, CASES, SEED)
    rng = random.Random(SEED)
    commands: Counter[str] = Counter()
    codes: Counter[int] = Counter()
    defects: list[str] = []
    for i, case in enumerate(cases):
        for o in sf.run_case(case, tmp_path / f"c{i % 8}", rng):
            commands[o.command] += 1
            codes[o.code] += 1
            if o.defect:
                defects.append(f"{case.source} [{case.mutation}] {o.command}: {o.error}")
    assert not defects, f"{len(defects)} of {len(cases)} cases broke the contract:\n" + "\n".join(defects[:10])
    assert len(cases) == CASES
    # Every command was exercised, and the mutations reach past the reader (not everything is exit 2).
    assert set(commands) == set(sf.QUICK)
    assert codes[0] + codes[1] > CASES // 10 and codes[2] > CASES // 10
