"""The scale benchmark's model ladders: built with the shared GraphBuilder, deterministic, well formed."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from hwopt.format.tflite_io import read_model

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import scale_models  # a script in tools/


def test_fc_ladder_model() -> None:
    data = scale_models.fc_model(3, width=64)
    assert data == scale_models.fc_model(3, width=64)  # same bytes on every run
    model = read_model(data)
    sg = model.subgraphs[0]
    assert [op.op for op in sg.operators] == ["FULLY_CONNECTED"] * 3
    w = sg.tensor(sg.operators[1].inputs[1])
    assert w.name == "fc1/weights" and tuple(w.shape) == (64, 64)
    values = np.asarray(w.data).view(np.int8)
    assert 0.4 < float(np.mean(values == 0)) < 0.6  # half of the weights are zero
    bias = sg.tensor(sg.operators[1].inputs[2])
    assert np.allclose(bias.quantization.scale, scale_models.ACT_SCALE * 0.01)


def test_conv_ladder_model_is_per_channel() -> None:
    model = read_model(scale_models.conv_model(2, channels=16, size=4))
    sg = model.subgraphs[0]
    assert [op.op for op in sg.operators] == ["CONV_2D"] * 2
    w = sg.tensor(sg.operators[0].inputs[1])
    assert tuple(w.shape) == (16, 3, 3, 16) and len(w.quantization.scale) == 16
    assert tuple(sg.tensor(sg.operators[1].outputs[0]).shape) == (1, 4, 4, 16)
