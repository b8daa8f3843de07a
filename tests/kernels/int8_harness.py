"""numpy wrappers around the int8 kernels (through the same cffi build as the
fp32 ones) and random quantization parameters for their tests. Quantization
fields are the dicts of medyate.planner.quant (*_quant helpers)."""
from __future__ import annotations

import numpy as np

from kernel_harness import Kernels


def s8(a):
    return np.ascontiguousarray(a, dtype=np.int8)


class Kernels8:
    """numpy-in, numpy-out access to the int8 C kernels."""

    def __init__(self, K: Kernels):
        self.K, self.ffi, self.lib = K, K.ffi, K.lib
        self._keep = []   # buffers referenced by pointer fields of live structs

    def i8(self, a):
        if a is None:
            return self.ffi.NULL
        assert a.dtype == np.int8 and a.flags.c_contiguous
        return self.ffi.from_buffer("int8_t[]", a)

    def i32(self, a):
        if a is None:
            return self.ffi.NULL
        a = np.ascontiguousarray(a, dtype=np.int32)
        self._keep.append(a)
        return self.ffi.from_buffer("int32_t[]", a)

    def conv_q(self, q):
        return self.ffi.new("mdy_s8_conv_quant *", dict(
            x_zero=q["x_zero"], y_zero=q["y_zero"], act_min=q["act_min"], act_max=q["act_max"],
            multiplier=self.i32(q["multiplier"]), shift=self.i32(q["shift"])))

    def rescale_q(self, q):
        return self.ffi.new("mdy_s8_rescale *", {k: q[k] for k in (
            "x_zero", "y_zero", "multiplier", "shift", "act_min", "act_max")})

    # ------------------------------------------------------------ kernels
    def conv(self, P, q, x, w, b=None):
        y = np.full((P["out_h"], P["out_w"], P["out_c"]), 0x5A, np.int8)
        fn = (self.lib.mdy_depthwise_conv2d_nhwc_s8 if P["groups"] != 1
              else self.lib.mdy_conv2d_nhwc_s8)
        fn(self.K.conv_p(P), self.conv_q(q), self.i8(s8(x)), self.i8(s8(w)),
           self.i32(None if b is None else b), self.i8(y))
        return y

    def fc(self, q, x, w, b=None):
        w = s8(w)
        y = np.full(w.shape[0], 0x5A, np.int8)
        self.lib.mdy_fully_connected_s8(w.shape[1], w.shape[0], self.conv_q(q), self.i8(s8(x)),
                                        self.i8(w), self.i32(None if b is None else b),
                                        self.i8(y))
        return y

    def add(self, q, a, b):
        a, b = s8(a), s8(b)
        y = np.empty_like(a)
        qq = self.ffi.new("mdy_s8_add_quant *", q)
        self.lib.mdy_add_s8(a.size, qq, self.i8(a), self.i8(b), self.i8(y))
        return y

    def mul_channel(self, q, x, s):
        x, s = s8(x), s8(s)
        y = np.empty_like(x)
        qq = self.ffi.new("mdy_s8_mul_quant *", q)
        hw, c = x.size // s.size, s.size
        self.lib.mdy_mul_channel_nhwc_s8(hw, c, qq, self.i8(x), self.i8(s), self.i8(y))
        return y

    def _scratch(self, nbytes):
        """Scratch of exactly nbytes (int32 words) plus a canary word behind it."""
        buf = np.full(nbytes // 4 + 1, 0x7EADBEEF, np.int32)
        return buf

    def avgpool(self, P, q, x):
        y = np.full((P["out_h"], P["out_w"], P["c"]), 0x5A, np.int8)
        pp = self.K.pool_p(P)
        scratch = self._scratch(self.lib.mdy_avgpool_nhwc_s8_get_buffer_size(pp))
        self.lib.mdy_avgpool_nhwc_s8(pp, self.rescale_q(q), self.i8(s8(x)), self.i8(y),
                                     self.ffi.from_buffer("int32_t[]", scratch))
        assert scratch[-1] == 0x7EADBEEF, "avgpool wrote past its scratch"
        return y

    def global_avgpool(self, q, x):
        x = s8(x)
        h, w, c = x.shape
        y = np.full(c, 0x5A, np.int8)
        scratch = self._scratch(self.lib.mdy_global_avgpool_nhwc_s8_get_buffer_size(h, w, c))
        self.lib.mdy_global_avgpool_nhwc_s8(h, w, c, self.rescale_q(q), self.i8(x), self.i8(y),
                                            self.ffi.from_buffer("int32_t[]", scratch))
        assert scratch[-1] == 0x7EADBEEF, "global avgpool wrote past its scratch"
        return y

    def maxpool(self, P, q, x, with_mask=False):
        """y, or (y, mask) with the mask's mdy_maxpool_nhwc_f32_mask_bytes bytes
        followed by 4 canary bytes 0xA5."""
        y = np.full((P["out_h"], P["out_w"], P["c"]), 0x5A, np.int8)
        pp = self.K.pool_p(P)
        mask = (np.full(self.lib.mdy_maxpool_nhwc_f32_mask_bytes(pp) + 4, 0xA5, np.uint8)
                if with_mask else None)
        self.lib.mdy_maxpool_nhwc_s8(pp, self.rescale_q(q), self.i8(s8(x)), self.i8(y),
                                     self.K.u8(mask))
        return (y, mask) if with_mask else y

    def concat(self, qa, qb, a, b):
        a, b = s8(a), s8(b)
        hw = a.shape[0] * a.shape[1]
        ca, cb = a.shape[2], b.shape[2]
        y = np.full(a.shape[:2] + (ca + cb,), 0x5A, np.int8)
        self.lib.mdy_concat_channels_nhwc_s8(hw, ca, cb, self.rescale_q(qa), self.rescale_q(qb),
                                             self.i8(a), self.i8(b), self.i8(y))
        return y

    def table(self, table, x):
        x = s8(x)
        y = np.empty_like(x)
        self.lib.mdy_table_s8(x.size, self.i8(s8(table)), self.i8(x), self.i8(y))
        return y

    def quantize(self, x, scale, zero):
        x = np.ascontiguousarray(x, np.float32)
        y = np.empty(x.shape, np.int8)
        self.lib.mdy_quantize_f32_s8(x.size, self.K.f(x), scale, zero, self.i8(y))
        return y

    def dequantize(self, x, scale, zero):
        x = s8(x)
        y = np.empty(x.shape, np.float32)
        self.lib.mdy_dequantize_s8_f32(x.size, self.i8(x), scale, zero, self.K.f(y))
        return y


    # ------------------------------------------------------------ training
    def conv_wgrad(self, P, x_maps, x_zero, x_scale, sel, dy, dw_slices):
        out = np.ascontiguousarray(dw_slices, np.float32).copy()
        psel, keep = self.K.u16(sel)
        fn = (self.lib.mdy_depthwise_conv2d_nhwc_s8_wgrad if P["groups"] != 1
              else self.lib.mdy_conv2d_nhwc_s8_wgrad)
        xm = s8(x_maps)
        fn(self.K.conv_p(P), self.i8(xm) if xm.size else self.ffi.NULL, x_zero, x_scale,
           psel, len(keep), self.K.f(np.ascontiguousarray(dy, np.float32)),
           self.K.f(out) if out.size else self.ffi.NULL)
        return out

    def fc_wgrad(self, n_in, n_out, x_vals, x_zero, x_scale, sel, dy, dw_slices):
        out = np.ascontiguousarray(dw_slices, np.float32).copy()
        psel, keep = self.K.u16(sel)
        self.lib.mdy_fully_connected_s8_wgrad(n_in, n_out, self.i8(s8(x_vals)), x_zero, x_scale,
                                              psel, len(keep),
                                              self.K.f(np.ascontiguousarray(dy, np.float32)),
                                              self.K.f(out))
        return out

    def _f32(self, a):
        a = np.ascontiguousarray(a, np.float32)
        self._keep.append(a)
        return self.K.f(a)

    def conv_igrad(self, P, w, w_scales, dy, dx=None, accumulate=0):
        out = (np.full((P["in_h"], P["in_w"], P["in_c"]), np.nan, np.float32) if dx is None
               else np.ascontiguousarray(dx, np.float32).copy())
        fn = (self.lib.mdy_depthwise_conv2d_nhwc_s8_igrad if P["groups"] != 1
              else self.lib.mdy_conv2d_nhwc_s8_igrad)
        fn(self.K.conv_p(P), self.i8(s8(w)), self._f32(w_scales), self._f32(dy),
           self.K.f(out), accumulate)
        return out

    def fc_igrad(self, w, w_scales, dy, dx=None, accumulate=0):
        w = s8(w)
        out = (np.full(w.shape[1], np.nan, np.float32) if dx is None
               else np.ascontiguousarray(dx, np.float32).copy())
        self.lib.mdy_fully_connected_s8_igrad(w.shape[1], w.shape[0], self.i8(w),
                                              self._f32(w_scales), self._f32(dy),
                                              self.K.f(out), accumulate)
        return out

    def hardswish_igrad(self, x, x_scale, x_zero, dy, dx=None, accumulate=0):
        x, dy = s8(x), np.ascontiguousarray(dy, np.float32)
        out = (np.full(x.shape, np.nan, np.float32) if dx is None
               else np.ascontiguousarray(dx, np.float32).copy())
        self.lib.mdy_hardswish_s8_igrad(x.size, self.i8(x), x_scale, x_zero, self.K.f(dy),
                                        self.K.f(out), accumulate)
        return out

    def mul_channel_igrad_x(self, s, s_scale, s_zero, dy, dx=None, accumulate=0):
        """dy [hw][c], s [c]."""
        s, dy = s8(s), np.ascontiguousarray(dy, np.float32)
        out = (np.full(dy.shape, np.nan, np.float32) if dx is None
               else np.ascontiguousarray(dx, np.float32).copy())
        self.lib.mdy_mul_channel_nhwc_s8_igrad_x(dy.shape[0], s.size, self.i8(s), s_scale,
                                                 s_zero, self.K.f(dy), self.K.f(out),
                                                 accumulate)
        return out

    def mul_channel_igrad_s(self, x, x_scale, x_zero, dy, ds=None, accumulate=0):
        """x, dy [hw][c]; ds [c]."""
        x, dy = s8(x), np.ascontiguousarray(dy, np.float32)
        out = (np.full(x.shape[1], np.nan, np.float32) if ds is None
               else np.ascontiguousarray(ds, np.float32).copy())
        self.lib.mdy_mul_channel_nhwc_s8_igrad_s(x.shape[0], x.shape[1], self.i8(x), x_scale,
                                                 x_zero, self.K.f(dy), self.K.f(out),
                                                 accumulate)
        return out

    def clamp_mask(self, y, act_min, act_max):
        y = s8(y)
        mask = np.full((y.size + 7) // 8 + 4, 0xA5, np.uint8)
        self.lib.mdy_clamp_mask_s8(y.size, self.i8(y), act_min, act_max, self.K.u8(mask))
        return mask

    def sgd_slice(self, groups, group, w, stride, w_scales, g, lr, seed):
        """w: the whole weight array (int8, updated in place through `stride`)."""
        rng = self.ffi.new("uint32_t *", seed)
        g = np.array(g, np.float32)                     # a copy: the kernel zeroes it
        n2 = self.lib.mdy_sgd_slice_s8(groups, group, self.i8(w), stride, self._f32(w_scales),
                                       self.K.f(g), lr, rng)
        return n2, g, int(rng[0])

    def sgd_bias(self, b, bias_scales, g, lr, seed):
        rng = self.ffi.new("uint32_t *", seed)
        b = np.array(b, np.int32)
        g = np.array(g, np.float32)
        n2 = self.lib.mdy_sgd_bias_s32(b.size, self.ffi.from_buffer("int32_t[]", b),
                                       self._f32(bias_scales), self.K.f(g), lr, rng)
        return n2, b, g, int(rng[0])


# ---------------------------------------------------------------- random parameters


def rand_codes(rng, shape):
    return rng.integers(-128, 128, size=shape, dtype=np.int64).astype(np.int8)


def rand_zero(rng):
    """Zero points across the whole range, the ends included."""
    return int(rng.choice([-128, 127, 0, int(rng.integers(-128, 128))]))


def rand_scale(rng, lo=1e-3, hi=1e-1):
    return float(np.float32(np.exp(rng.uniform(np.log(lo), np.log(hi)))))
