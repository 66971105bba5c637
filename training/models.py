"""Network architectures, written in backend-neutral Keras 3 (TensorFlow here, JAX on a GPU host).

Inputs are the contract's normalized faces: float32 (48, 48, 1) in [0, 1].
"""

from __future__ import annotations

from typing import Callable

import keras
from keras import layers

from emotion_edge.device.contract import ModelContract
from emotion_edge.device.errors import UsageError

BN_MOMENTUM = 0.9


def _conv_bn_relu(x, filters: int, kernel: int, padding: str = "same", name: str | None = None):
    # The conv needs no bias: BatchNorm's beta supplies it, and the int8 converter folds BN in.
    x = layers.Conv2D(filters, kernel, padding=padding, use_bias=False, name=name)(x)
    # momentum 0.9, not Keras' 0.99: on short CPU schedules the slow moving averages
    # left validation accuracy at chance for the first epochs.
    x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
    return layers.ReLU()(x)


def _dense_head(x, units: int, dropout: float, num_classes: int):
    """Dense-BN-ReLU-Dropout, then the softmax over the contract's labels."""
    x = layers.Dense(units, use_bias=False)(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
    x = layers.ReLU()(x)
    x = layers.Dropout(dropout)(x)
    # float32 even when training in bf16: a softmax in bf16 loses the small probabilities the loss needs.
    return layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)


def seed_model2(contract: ModelContract) -> keras.Model:
    """The seed paper's Model 2, layer for layer."""
    inputs = keras.Input(contract.input_shape, name="face")
    x = _conv_bn_relu(inputs, 64, 5, padding="valid")
    x = _conv_bn_relu(x, 64, 4, padding="valid")
    x = layers.MaxPooling2D(2)(x)
    x = layers.Dropout(0.5)(x)
    x = _conv_bn_relu(x, 32, 3, padding="valid")
    x = layers.MaxPooling2D(2)(x)
    x = layers.Dropout(0.5)(x)
    x = layers.Flatten()(x)
    outputs = _dense_head(x, 128, 0.2, contract.num_classes)
    return keras.Model(inputs, outputs, name="seed_model2")


def seed_cnn(contract: ModelContract) -> keras.Model:
    """The seed paper's 7-class Model 1: a plain three-stage CNN with a wide dense head."""
    inputs = keras.Input(contract.input_shape, name="face")
    x = inputs
    for filters in (32, 64, 128):
        x = _conv_bn_relu(x, filters, 3)
        x = _conv_bn_relu(x, filters, 3)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(0.25)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(512, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(contract.num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="seed_cnn")


def edge_vgg(contract: ModelContract, widths: tuple[int, ...] = (32, 64, 96, 192), name: str = "edge_vgg") -> keras.Model:
    """The project's own net, built for accuracy per Pi-millisecond.

    VGG-style 3x3 stacks (the family behind the best single FER2013 nets) but a
    single conv at full 48x48 resolution, where convs cost the most, two convs
    per lower-resolution stage, and global average pooling instead of a wide
    dense head: ~0.75 M parameters, ~70 M MACs, int8-friendly (no depthwise).
    Regularised by augmentation and head dropout only: spatial dropout in the
    stages slowed early learning badly in CPU-budget runs.
    """
    inputs = keras.Input(contract.input_shape, name="face")
    x = _conv_bn_relu(inputs, widths[0], 3)
    x = layers.MaxPooling2D(2)(x)
    for stage, filters in enumerate(widths[1:], start=1):
        x = _conv_bn_relu(x, filters, 3)
        x = _conv_bn_relu(x, filters, 3)
        if stage < len(widths) - 1:
            x = layers.MaxPooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = _dense_head(x, 256, 0.4, contract.num_classes)
    return keras.Model(inputs, outputs, name=name)


def edge_vgg_m(contract: ModelContract) -> keras.Model:
    """`edge-vgg` widened 1.5x in the lower stages (~150 M MACs): the next student up the accuracy/ms curve."""
    return edge_vgg(contract, widths=(48, 96, 144, 256), name="edge_vgg_m")


def edge_vgg_l(contract: ModelContract) -> keras.Model:
    """`edge-vgg` at twice the width (~280 M MACs): a teacher on a CPU budget, or a student near 3 ms per face."""
    return edge_vgg(contract, widths=(64, 128, 192, 384), name="edge_vgg_l")


ARCHITECTURES: dict[str, Callable[[ModelContract], keras.Model]] = {
    "seed-cnn": seed_cnn,
    "seed-model2": seed_model2,
    "edge-vgg": edge_vgg,
    "edge-vgg-m": edge_vgg_m,
    "edge-vgg-l": edge_vgg_l,
}


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one forward pass, from conv and dense layer shapes.

    Latency on the Pi tracks MACs far better than parameter count, so every
    experiment records both.
    """
    total = 0
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, layers.Conv2D):
            _, out_h, out_w, out_c = layer.output.shape
            k_h, k_w = layer.kernel_size
            total += out_h * out_w * out_c * k_h * k_w * layer.input.shape[-1]
        elif isinstance(layer, layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return int(total)


def build_model(name: str, contract: ModelContract) -> keras.Model:
    try:
        factory = ARCHITECTURES[name]
    except KeyError:
        raise UsageError(f"unknown architecture {name!r}; choose from {', '.join(ARCHITECTURES)}") from None
    return factory(contract)
