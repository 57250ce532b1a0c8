"""The Keras side of the tree: train the float model, apply TFMOT, convert each leaf to full-int8 TFLite.

Every function takes the modules from `hwopt.tree._tf.load()` so nothing here imports
TensorFlow at module level. Each branch re-seeds before it trains, so a leaf depends only
on the seed and its parents, not on which other leaves ran before it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwopt.errors import DataError, ModelFormatError, UnsupportedModelError, UsageError
from hwopt.tree._tf import TF, seed_everything
from hwopt.tree.data import TreeDataset

log = logging.getLogger(__name__)

REPRESENTATIVE_SAMPLES = 256


@dataclass(frozen=True)
class Schedule:
    """Epochs of the float training and of every TFMOT fine-tuning step."""

    base_epochs: int
    finetune_epochs: int
    batch_size: int = 32
    base_lr: float = 1e-3
    finetune_lr: float = 5e-4

    def __post_init__(self) -> None:
        if self.base_epochs < 0 or self.finetune_epochs < 1:
            raise UsageError("epochs must be >= 0 for the float model and >= 1 for fine-tuning")


QUICK = Schedule(base_epochs=12, finetune_epochs=3)
FULL = Schedule(base_epochs=60, finetune_epochs=15)


def schedule_for(quick: bool, epochs: int | None, pretrained: bool) -> Schedule:
    """The schedule of a run: `--epochs N` sets the float epochs and a quarter of that (>= 1) for fine-tuning.

    A user model is taken as trained (0 float epochs) unless `--epochs` asks for more.
    """
    base = QUICK if quick else FULL
    if epochs is None:
        return Schedule(0, base.finetune_epochs) if pretrained else base
    if epochs < 1:
        raise UsageError(f"--epochs must be a positive count, got {epochs}")
    return Schedule(epochs, max(1, round(epochs / 4)))


@dataclass(frozen=True)
class Leaf:
    """One trained-and-converted leaf: its int8 .tflite and the Keras-side accuracy of its last model."""

    name: str
    tflite: bytes
    keras_top1: float
    keras_kind: str  # "fp32" for float models, "fake-int8" for QAT models


def build_digits_model(mods: TF, input_shape: tuple[int, ...], classes: int, width: int = 64, blocks: int = 3) -> Any:
    """A small DS-CNN: Conv3x3-BN-ReLU, then `blocks` x (DWConv3x3-BN-ReLU, Conv1x1-BN-ReLU), GAP, Dense softmax."""
    layers = mods.keras.layers
    inp = layers.Input(shape=input_shape, name="input")
    x = layers.Conv2D(width, 3, padding="same", name="conv0")(inp)
    x = layers.BatchNormalization(momentum=0.9, name="bn0")(x)
    x = layers.ReLU(name="relu0")(x)
    for b in range(1, blocks + 1):
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"dw{b}")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"dw{b}_bn")(x)
        x = layers.ReLU(name=f"dw{b}_relu")(x)
        x = layers.Conv2D(width, 1, name=f"pw{b}")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"pw{b}_bn")(x)
        x = layers.ReLU(name=f"pw{b}_relu")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    out = layers.Dense(classes, activation="softmax", name="logits")(x)
    return mods.keras.Model(inp, out, name="ds_cnn_digits")


def load_keras_model(mods: TF, path: str | os.PathLike[str]) -> Any:
    """Load a Keras 2 model (`.keras` or `.h5`) without its optimizer state."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"model file not found: {p}")
    if p.suffix.lower() not in (".keras", ".h5", ".hdf5"):
        raise UsageError(f"--model must be a .keras or .h5 Keras model, got {p.name}")
    try:
        model = mods.keras.models.load_model(p, compile=False)
    except Exception as exc:  # Keras raises many types for unreadable or Keras-3-only files
        raise ModelFormatError(f"cannot load Keras model {p}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(model, mods.keras.Model) or len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UnsupportedModelError(f"{p}: hwopt tree needs a Keras model with one input and one output")
    return model


def outputs_probabilities(mods: TF, model: Any) -> bool:
    """True when the model ends in a softmax (so the loss must not apply one again)."""
    last = model.layers[-1]
    if isinstance(last, mods.keras.layers.Softmax):
        return True
    act = getattr(last, "activation", None)
    return act is mods.keras.activations.softmax


def check_compatible(mods: TF, model: Any, data: TreeDataset) -> None:
    """DataError unless the dataset's examples and labels fit the model's input and output."""
    want = tuple(model.inputs[0].shape[1:])
    if tuple(data.input_shape) != want:
        raise DataError(f"dataset examples have shape {list(data.input_shape)} but the model expects {list(want)}")
    n_out = model.outputs[0].shape[-1]
    if n_out is None or len(model.outputs[0].shape) != 2:
        raise UnsupportedModelError("hwopt tree needs a classifier whose output is [batch, classes]")
    if data.classes > int(n_out):
        raise DataError(f"labels go up to class {data.classes - 1} but the model has {n_out} outputs")


def _compile(mods: TF, model: Any, lr: float, probabilities: bool) -> None:
    model.compile(optimizer=mods.keras.optimizers.Adam(learning_rate=lr),
                  loss=mods.keras.losses.SparseCategoricalCrossentropy(from_logits=not probabilities),
                  metrics=["accuracy"])


def _fit(mods: TF, model: Any, data: TreeDataset, epochs: int, lr: float, probabilities: bool,
         batch_size: int, callbacks: tuple[Any, ...] = ()) -> None:
    _compile(mods, model, lr, probabilities)
    if epochs:
        model.fit(data.x_train, data.y_train, batch_size=batch_size, epochs=epochs, shuffle=True,
                  callbacks=list(callbacks), verbose=0)


def keras_top1(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of a Keras model (float or fake-quant) on the held-out set."""
    pred = np.asarray(model.predict(x, batch_size=256, verbose=0))
    return float(np.mean(np.argmax(pred, axis=-1) == y))


def representative(data: TreeDataset) -> Callable[[], Iterator[list[np.ndarray]]]:
    """The converter's calibration set: a fixed sample of training images, one per batch."""
    n = min(REPRESENTATIVE_SAMPLES, data.x_train.shape[0])
    idx = np.linspace(0, data.x_train.shape[0] - 1, n).round().astype(np.int64)
    sample = data.x_train[idx]

    def gen() -> Iterator[list[np.ndarray]]:
        for i in range(sample.shape[0]):
            yield [sample[i : i + 1]]

    return gen


def to_int8_tflite(mods: TF, model: Any, data: TreeDataset) -> bytes:
    """Full-integer conversion: int8 weights, activations, input and output (Optimize.DEFAULT)."""
    tf = mods.tf
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative(data)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    try:
        return bytes(conv.convert())
    except Exception as exc:  # the converter's errors are long; keep the first line
        raise UnsupportedModelError(f"TFLite int8 conversion failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def _clone(mods: TF, model: Any) -> Any:
    copy = mods.keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


class TreeTrainer:
    """Grows the TFMOT collaborative-optimization tree from one trained float model."""

    def __init__(self, mods: TF, base: Any, data: TreeDataset, schedule: Schedule, seed: int,
                 sparsity: float = 0.5, clusters: int = 16) -> None:
        self.mods, self.base, self.data, self.schedule = mods, base, data, schedule
        self.seed, self.sparsity, self.clusters = seed, sparsity, clusters
        self.probabilities = outputs_probabilities(mods, base)
        self._cache: dict[str, Any] = {}

    # -- helpers -----------------------------------------------------------------
    def _finetune(self, model: Any, step: int, callbacks: tuple[Any, ...] = ()) -> Any:
        seed_everything(self.mods, self.seed + step)
        s = self.schedule
        _fit(self.mods, model, self.data, s.finetune_epochs, s.finetune_lr, self.probabilities, s.batch_size, callbacks)
        return model

    def _leaf(self, name: str, model: Any, kind: str) -> Leaf:
        top1 = keras_top1(model, self.data.x_test, self.data.y_test)
        return Leaf(name, to_int8_tflite(self.mods, model, self.data), top1, kind)

    def _qat(self, model: Any, scheme: Any, step: int) -> Any:
        qk = self.mods.tfmot.quantization.keras
        seed_everything(self.mods, self.seed + step)
        annotated = qk.quantize_annotate_model(model)
        with qk.quantize_scope():
            qat = qk.quantize_apply(annotated, scheme) if scheme is not None else qk.quantize_apply(annotated)
        return self._finetune(qat, step)

    # -- intermediate (stripped) float models, built once -------------------------
    def pruned(self) -> Any:
        if "pruned" not in self._cache:
            sp = self.mods.tfmot.sparsity.keras
            seed_everything(self.mods, self.seed + 10)
            # Re-prune at least four times in the fine-tuning (a tiny dataset has few steps: with a fixed
            # frequency larger than the step count the mask is never applied) and at most every 100 steps.
            steps = -(-self.data.x_train.shape[0] // self.schedule.batch_size) * self.schedule.finetune_epochs
            sched = sp.ConstantSparsity(self.sparsity, begin_step=0, frequency=max(1, min(100, steps // 4)))
            wrapped = sp.prune_low_magnitude(_clone(self.mods, self.base), pruning_schedule=sched)
            self._finetune(wrapped, 10, (sp.UpdatePruningStep(),))
            self._cache["pruned"] = sp.strip_pruning(wrapped)
        return self._cache["pruned"]

    def _clustered(self, key: str, source: Any, step: int, **kwargs: Any) -> Any:
        if key not in self._cache:
            cl = self.mods.tfmot.clustering.keras
            seed_everything(self.mods, self.seed + step)
            wrapped = cl.cluster_weights(_clone(self.mods, source), number_of_clusters=self.clusters,
                                         cluster_centroids_init=cl.CentroidInitialization.KMEANS_PLUS_PLUS, **kwargs)
            self._finetune(wrapped, step)
            self._cache[key] = cl.strip_clustering(wrapped)
        return self._cache[key]

    def clustered(self) -> Any:
        return self._clustered("clustered", self.base, 20)

    def clustered_per_channel(self) -> Any:
        return self._clustered("clustered_pc", self.base, 30, cluster_per_channel=True)

    def pruned_clustered(self) -> Any:
        return self._clustered("pruned_clustered", self.pruned(), 40, preserve_sparsity=True)

    # -- leaves ------------------------------------------------------------------
    def build(self, name: str) -> Leaf:
        """Train (if needed) and convert the leaf called `name` (see hwopt.tree.techniques.LEAVES)."""
        combine = self.mods.tfmot.experimental.combine
        if name == "baseline":
            return self._leaf(name, self.base, "fp32")
        if name == "qat":
            return self._leaf(name, self._qat(_clone(self.mods, self.base), None, 50), "fake-int8")
        if name == "pruned":
            return self._leaf(name, self.pruned(), "fp32")
        if name == "pqat":
            return self._leaf(name, self._qat(self.pruned(), combine.Default8BitPrunePreserveQuantizeScheme(), 60),
                              "fake-int8")
        if name == "clustered":
            return self._leaf(name, self.clustered(), "fp32")
        if name == "clustered_per_channel":
            return self._leaf(name, self.clustered_per_channel(), "fp32")
        if name == "cqat":
            return self._leaf(name, self._qat(self.clustered(), combine.Default8BitClusterPreserveQuantizeScheme(), 70),
                              "fake-int8")
        if name == "pruned_clustered":
            return self._leaf(name, self.pruned_clustered(), "fp32")
        if name == "pcqat":
            scheme = combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)
            return self._leaf(name, self._qat(self.pruned_clustered(), scheme, 80), "fake-int8")
        raise UsageError(f"unknown tree leaf {name!r}")


def train_base(mods: TF, model: Any | None, data: TreeDataset, schedule: Schedule, seed: int) -> Any:
    """The float model every branch starts from: the built-in DS-CNN or the user's model, trained `base_epochs`."""
    seed_everything(mods, seed)
    if model is None:
        model = build_digits_model(mods, data.input_shape, data.classes)
    check_compatible(mods, model, data)
    _fit(mods, model, data, schedule.base_epochs, schedule.base_lr, outputs_probabilities(mods, model), schedule.batch_size)
    return model
