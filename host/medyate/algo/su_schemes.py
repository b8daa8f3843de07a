"""The Tiny Training Engine's published static sparse-update (SU) schemes.

MCUNetV3 / TTE (Lin et al., "On-Device Training Under 256KB Memory", 2022) hand-write
one scheme per model and memory size in `compilation/mcu_ir_gen.py` of
mit-han-lab/tiny-training (MIT License); the values below are that file's, for the
three models bundled in models/ (the same networks, converted from TTE's own files).
A scheme trains:
  - the biases of the last `n_bias` convolutions;
  - the weights of the convolutions `weight_idx` (indices in model order, the first
    convolution being 0), each for the fraction `ratio` of its input channels
    (0: the layer is listed but its weights stay frozen), the channels with the
    largest weight magnitude ||W[:, c]||_2 ("magnitude+");
  - the classifier (here: the new head), in full.
The key is TTE's name for the scheme's memory ("49kb" ...). `conv_names` maps the
indices onto this project's layer names: the model's trainable layers in order,
the classifier (not a convolution in TTE's count) left out.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SUScheme:
    n_bias: int
    weight_idx: tuple[int, ...]
    ratio: tuple[float, ...]


def _s(n_bias, idx, ratio) -> SUScheme:
    assert len(idx) == len(ratio)
    return SUScheme(n_bias, tuple(idx), tuple(ratio))


TTE_SCHEMES: dict[str, dict[str, SUScheme]] = {
    "mcunet-5fps": {
        "49kb": _s(20, [23, 24, 27, 30, 33, 39], [0, .25, .5, .5, 0, 0]),
        "74kb": _s(21, [21, 23, 24, 26, 27, 30], [1, 0, 1, 0, .5, 1]),
        "99kb": _s(22, [21, 24, 27, 30, 36, 39], [1, 1, 1, 1, .125, .25]),
        "124kb": _s(24, [21, 24, 27, 30, 33, 39], [.25, 1, 1, 1, .5, .5]),
        "148kb": _s(23, [21, 24, 27, 30, 36, 39], [1, 1, 1, 1, 1, .5]),
    },
    "mbv2-w0.35": {
        "49kb": _s(16, [36, 39, 40, 41, 42, 45, 48, 49], [1, 1, 0, .25, .125, .125, .125, .125]),
        "73kb": _s(20, [32, 33, 36, 39, 41, 42, 45, 48], [.125, .5, .5, 1, .25, .125, .125, 1]),
        "99kb": _s(25, [27, 30, 33, 36, 39, 42, 45, 48], [1, 1, 1, 1, 1, .125, .5, 1]),
        "123kb": _s(31, [27, 30, 33, 36, 39, 42, 45, 48], [1, 1, 1, 1, 1, .5, 1, 1]),
        "138kb": _s(34, [27, 30, 33, 36, 39, 42, 45, 48], [1] * 8),
    },
    "proxyless-w0.3": {
        "49kb": _s(21, [39, 42, 44, 45, 50, 51, 54, 57], [.25, 1, 0, 1, 0, .125, .25, .25]),
        "74kb": _s(28, [33, 36, 39, 42, 45, 51, 54, 57], [.5, .25, 1, 1, 1, .5, .25, .5]),
        "98kb": _s(25, [36, 39, 42, 45, 48, 51, 54, 57], [1, .5, 1, 1, .25, .5, 1, 1]),
        "120kb": _s(32, [36, 39, 42, 45, 48, 51, 54, 57], [1, 1, 1, 1, .5, 1, 1, 1]),
        "148kb": _s(45, [36, 39, 42, 45, 48, 51, 54, 57], [1] * 8),
    },
}


def scheme_kb(key: str) -> int:
    """'49kb' -> 49."""
    return int(key.lower().removesuffix("kb"))


def nearest_scheme(model: str, kb: float) -> tuple[str, SUScheme]:
    """The model's published scheme whose memory name is nearest `kb`."""
    schemes = TTE_SCHEMES[model]
    key = min(schemes, key=lambda k: (abs(scheme_kb(k) - kb), scheme_kb(k)))
    return key, schemes[key]


def scheme_layers(scheme: SUScheme, conv_names: list[str]) -> tuple[list[str], dict[str, float]]:
    """(layers whose bias trains, {layer: ratio of its input channels whose
    weights train}) in this project's layer names."""
    n = len(conv_names)
    bad = [i for i in scheme.weight_idx if not 0 <= i < n]
    if bad or scheme.n_bias > n:
        raise ValueError(f"scheme does not fit a model of {n} convolutions "
                         f"(indices {bad or scheme.weight_idx}, n_bias {scheme.n_bias})")
    bias = conv_names[n - scheme.n_bias:]
    weights = {conv_names[i]: r for i, r in zip(scheme.weight_idx, scheme.ratio) if r > 0}
    return bias, weights
