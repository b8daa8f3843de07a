"""int8 quantization parameters for the device's int8 kernels, and the same
integer arithmetic in numpy.

The one home, on the host, of the fixed-point requantization the C kernels
share (firmware/src/kernels/reference/int8/mdy_requantize.h):

- `quantize_multiplier` turns a real scale into the (multiplier, shift) pair
  the kernels take, exactly as TFLite's `QuantizeMultiplier`;
- `requantize` is the kernels' `mdy_requantize`, element for element, in
  int64 numpy: the host computes the device's int8 results bit for bit with it;
- the `*_quant` helpers compute every field of the kernels' parameter structs
  from the scales and zero points of an op's tensors, so the planner, codegen
  and the tests fill them one way;
- the `*_table` helpers build the 256-entry tables of `mdy_table_s8`
  (hard-swish, hard-sigmoid, a stand-alone clamp or rescale).

The rounding rules are written down in docs/ARCHITECTURE.md ("int8 arithmetic").
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import MedyateError

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
QMIN, QMAX = -128, 127
ADD_LEFT_SHIFT = 20          # MDY_S8_ADD_LEFT_SHIFT in medyate.h


# ---------------------------------------------------------------- multiplier


def quantize_multiplier(scale: float, what: str = "scale") -> tuple[int, int]:
    """(multiplier, shift) with scale ~= multiplier * 2^(shift - 31) and
    multiplier in [2^30, 2^31) (TFLite's QuantizeMultiplier).

    The mantissa is rounded half away from zero (std::round); a mantissa that
    rounds up to 2^31 becomes 2^30 with shift + 1; a scale below 2^-32 (shift
    < -31) is 0 (multiplier 0, shift 0): every accumulator then requantizes to 0.
    `what` names the op and field in errors."""
    scale = float(scale)
    if not math.isfinite(scale) or scale < 0:
        raise MedyateError(f"{what}: requantization scale {scale!r} must be finite and >= 0")
    if scale == 0.0:
        return 0, 0
    mant, shift = math.frexp(scale)              # scale = mant * 2^shift, mant in [0.5, 1)
    q = math.floor(mant * (1 << 31) + 0.5)       # mant > 0: floor(x + 0.5) is half away
    if q == 1 << 31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        raise MedyateError(f"{what}: requantization scale {scale:.6g} is too large "
                           f"(at most 2^30; the tensors' scales do not fit int8 arithmetic)")
    return int(q), int(shift)


def quantize_multipliers(scales, what: str = "scale") -> tuple[np.ndarray, np.ndarray]:
    """Per-channel `quantize_multiplier`: int32 arrays (multiplier, shift)."""
    pairs = [quantize_multiplier(s, f"{what}[{i}]")
             for i, s in enumerate(np.asarray(scales, np.float64).reshape(-1))]
    m = np.array([p[0] for p in pairs], np.int32)
    s = np.array([p[1] for p in pairs], np.int32)
    return m, s


# ---------------------------------------------------------------- the arithmetic


def _trunc_div_pow2(x: np.ndarray, e: int) -> np.ndarray:
    """x / 2^e truncated toward zero (C's int64 division by a power of two)."""
    return np.where(x >= 0, x >> e, -((-x) >> e))


def srdhm(a, b) -> np.ndarray:
    """round(a * b / 2^31), ties toward +infinity (a nudge of +-2^30, then C's
    truncating division: gemmlowp's rounding); INT32_MIN * INT32_MIN -> INT32_MAX."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    r = _trunc_div_pow2(ab + nudge, 31)
    return np.where((a == INT32_MIN) & (b == INT32_MIN), np.int64(INT32_MAX), r)


def rounding_divide_by_pot(x, e) -> np.ndarray:
    """round(x / 2^e), ties away from zero, 0 <= e <= 31."""
    x = np.asarray(x, np.int64)
    e = np.asarray(e, np.int64)
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def requantize(v, multiplier, shift) -> np.ndarray:
    """The kernels' mdy_requantize on int32 values (int64 array out), broadcasting
    per-channel multipliers/shifts along the last axis."""
    v = np.asarray(v, np.int64)
    shift = np.asarray(shift, np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    v = np.clip(v << left, INT32_MIN, INT32_MAX)
    return rounding_divide_by_pot(srdhm(v, multiplier), right)


def rounding_divide_even(num, den) -> np.ndarray:
    """round(num / den) for den > 0, ties to even (integers, exact)."""
    num = np.asarray(num, np.int64)
    den = np.asarray(den, np.int64)
    mag = np.abs(num)
    quo, rem = mag // den, mag % den
    quo = quo + ((rem > den - rem) | ((rem == den - rem) & (quo % 2 == 1)))
    quo = np.minimum(quo, INT32_MAX)      # saturates as the C kernels do
    return np.where(num < 0, -quo, quo)


def pool_requantize(sums, counts, multiplier: int, shift: int) -> np.ndarray:
    """The pools' one rounding: round(sum * multiplier / (count * 2^(31 - shift))),
    ties to even, exact in int64 (the C kernels' mdy_requantize_mean). When
    31 - shift > 40 the quotient is below 1/4 in magnitude for any int8 sum, so
    it is 0 without forming 2^(31 - shift) * count."""
    e = 31 - int(shift)
    sums = np.asarray(sums, np.int64)
    if e > 40:
        return np.zeros(np.broadcast(sums, counts).shape, np.int64)
    return rounding_divide_even(sums * np.int64(multiplier),
                                np.asarray(counts, np.int64) << e)


def clamp(v, act_min: int = QMIN, act_max: int = QMAX) -> np.ndarray:
    return np.clip(v, act_min, act_max).astype(np.int8)


# ---------------------------------------------------------------- op parameters


def act_range(y_scale: float, y_zero: int, lo: float = -math.inf, hi: float = math.inf):
    """(act_min, act_max) in output codes of a fused clamp [lo, hi] (ReLU: lo 0;
    ReLU6: [0, 6]): the bounds quantized with the output's scale, rounded half
    away from zero (TFLite's CalculateActivationRangeQuantized), within int8."""
    def q(v):
        return int(y_zero) + int(math.copysign(math.floor(abs(v / y_scale) + 0.5), v))
    act_min = QMIN if lo == -math.inf else max(QMIN, q(lo))
    act_max = QMAX if hi == math.inf else min(QMAX, q(hi))
    if act_min > act_max:
        raise MedyateError(f"clamp [{lo}, {hi}] is empty in int8 codes of scale "
                           f"{y_scale:.6g}, zero point {y_zero}")
    return act_min, act_max


def conv_quant(x_scale: float, w_scales, y_scale: float, x_zero: int, y_zero: int,
               act: tuple[int, int] = (QMIN, QMAX), what: str = "conv") -> dict:
    """Fields of mdy_s8_conv_quant (conv, depthwise, fully connected): the
    effective scale x_scale * w_scale[o] / y_scale is computed in float64 from
    the (float32) scales, then quantize_multiplier per channel."""
    eff = (np.float64(x_scale) * np.asarray(w_scales, np.float64).reshape(-1)
           / np.float64(y_scale))
    m, s = quantize_multipliers(eff, f"{what}: x_scale*w_scale/y_scale")
    return dict(x_zero=int(x_zero), y_zero=int(y_zero), act_min=int(act[0]),
                act_max=int(act[1]), multiplier=m, shift=s)


def rescale_quant(x_scale: float, x_zero: int, y_scale: float, y_zero: int,
                  act: tuple[int, int] = (QMIN, QMAX), what: str = "rescale") -> dict:
    """Fields of mdy_s8_rescale (pools, concat parts)."""
    m, s = quantize_multiplier(np.float64(x_scale) / np.float64(y_scale),
                               f"{what}: x_scale/y_scale")
    return dict(x_zero=int(x_zero), y_zero=int(y_zero), multiplier=m, shift=s,
                act_min=int(act[0]), act_max=int(act[1]))


def add_quant(a_scale: float, a_zero: int, b_scale: float, b_zero: int, y_scale: float,
              y_zero: int, act: tuple[int, int] = (QMIN, QMAX), what: str = "add") -> dict:
    """Fields of mdy_s8_add_quant (TFLite's int8 Add): inputs to the common
    scale 2 max(a_scale, b_scale) after a left shift of 20 bits, the sum to y."""
    a_scale, b_scale, y_scale = map(np.float64, (a_scale, b_scale, y_scale))
    twice_max = 2.0 * max(a_scale, b_scale)
    am, ash = quantize_multiplier(a_scale / twice_max, f"{what}: a_scale")
    bm, bsh = quantize_multiplier(b_scale / twice_max, f"{what}: b_scale")
    ym, ysh = quantize_multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * y_scale),
                                  f"{what}: output scale")
    return dict(a_zero=int(a_zero), b_zero=int(b_zero), y_zero=int(y_zero),
                a_multiplier=am, a_shift=ash, b_multiplier=bm, b_shift=bsh,
                y_multiplier=ym, y_shift=ysh, act_min=int(act[0]), act_max=int(act[1]))


def mul_quant(x_scale: float, x_zero: int, s_scale: float, s_zero: int, y_scale: float,
              y_zero: int, act: tuple[int, int] = (QMIN, QMAX), what: str = "mul") -> dict:
    """Fields of mdy_s8_mul_quant (squeeze-excite channel multiply)."""
    m, sh = quantize_multiplier(np.float64(x_scale) * np.float64(s_scale) / np.float64(y_scale),
                                f"{what}: x_scale*s_scale/y_scale")
    return dict(x_zero=int(x_zero), s_zero=int(s_zero), y_zero=int(y_zero), multiplier=m,
                shift=sh, act_min=int(act[0]), act_max=int(act[1]))


def check_accumulator(bias, taps: int, x_zero: int, what: str = "conv") -> None:
    """Refuse a layer whose int32 accumulator could overflow: |bias| plus the
    largest sum of `taps` products (x - x_zero) * w, |w| <= 128."""
    worst = int(np.max(np.abs(np.asarray(bias, np.int64)))) if np.size(bias) else 0
    worst += int(taps) * (127 + abs(int(x_zero)) + 1) * 128
    if worst > INT32_MAX:
        raise MedyateError(f"{what}: int32 accumulator may overflow ({worst} > 2^31 - 1 "
                           f"with {taps} taps per output); the bias or the layer is too large")


# ---------------------------------------------------------------- tables


def _table(fn, x_scale: float, x_zero: int, y_scale: float, y_zero: int) -> np.ndarray:
    """y code of every x code -128..127: fn on the dequantized value in float64,
    quantized half to even (ONNX QuantizeLinear's rounding), saturated."""
    codes = np.arange(QMIN, QMAX + 1, dtype=np.int64)
    real = (codes - int(x_zero)) * np.float64(x_scale)
    y = np.rint(fn(real) / np.float64(y_scale)) + int(y_zero)
    return np.clip(y, QMIN, QMAX).astype(np.int8)


def hardswish_table(x_scale, x_zero, y_scale, y_zero) -> np.ndarray:
    """x * clamp(x / 6 + 1/2, 0, 1) (ONNX HardSwish)."""
    return _table(lambda v: v * np.clip(v / 6.0 + 0.5, 0.0, 1.0), x_scale, x_zero,
                  y_scale, y_zero)


def hardsigmoid_table(alpha, beta, x_scale, x_zero, y_scale, y_zero) -> np.ndarray:
    """clamp(alpha * x + beta, 0, 1) (ONNX HardSigmoid; alpha 0.2, beta 0.5 by default)."""
    a, b = np.float64(np.float32(alpha)), np.float64(np.float32(beta))
    return _table(lambda v: np.clip(a * v + b, 0.0, 1.0), x_scale, x_zero, y_scale, y_zero)


def clamp_table(lo, hi, x_scale, x_zero, y_scale, y_zero) -> np.ndarray:
    """A stand-alone Clip/ReLU (or, with lo, hi infinite, a pure rescale)."""
    return _table(lambda v: np.clip(v, lo, hi), x_scale, x_zero, y_scale, y_zero)
