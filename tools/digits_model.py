"""A small int8 conv net trained on scikit-learn's bundled digits dataset (no network access).

`build_digits_model()` trains a seeded Keras model on 8×8 digit images, converts it to a
fully int8 TFLite model with the TFLite converter, and returns the bytes together with
int8 held-out test data and a calibration split. Used by the enforce benchmark and the
`train`-marked accuracy test; needs the train extra (tensorflow, tf-keras).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

SEED = 0


@dataclass(frozen=True)
class DigitsModel:
    """The int8 TFLite model and int8 data quantized with its input scale/zero point."""

    tflite: bytes
    x_test: np.ndarray  # int8 [N, 8, 8, 1]
    y_test: np.ndarray  # int64 [N]
    x_calib: np.ndarray  # int8 [M, 8, 8, 1], from the training split
    y_calib: np.ndarray
    float_test_accuracy: float


def _split(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, random_state=seed, stratify=y)
    return x_tr, x_te, y_tr, y_te


def build_digits_model(seed: int = SEED, epochs: int = 30) -> DigitsModel:
    """Train, quantize to int8 and return the model with held-out int8 data (deterministic as far as TF allows)."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
    import tensorflow as tf
    import tf_keras as keras

    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    x_tr, x_te, y_tr, y_te = _split(seed)
    model = keras.Sequential([
        keras.layers.Input((8, 8, 1)),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x_tr, y_tr, epochs=epochs, batch_size=32, verbose=0, shuffle=True)
    float_acc = float(np.mean(model.predict(x_te, verbose=0).argmax(axis=1) == y_te))

    def representative() -> object:
        for i in range(0, min(len(x_tr), 300)):
            yield [x_tr[i : i + 1]]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    tflite = bytes(conv.convert())

    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=tflite)
    scale, zp = interp.get_input_details()[0]["quantization"]

    def q(x: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(x / scale) + zp, -128, 127).astype(np.int8)

    return DigitsModel(tflite, q(x_te), y_te, q(x_tr), y_tr, float_acc)


if __name__ == "__main__":
    dm = build_digits_model()
    print(f"digits model: {len(dm.tflite)} bytes, float test accuracy {dm.float_test_accuracy:.4f}, "
          f"{len(dm.y_test)} held-out samples")
