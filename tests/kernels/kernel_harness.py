"""numpy wrappers around the fp32 kernels (loaded through cffi) and the
parameter structs of convs and pools, shared by the kernel tests; the kernel
selections they run against."""
from __future__ import annotations

import numpy as np

from medyate.boards import list_boards
from medyate.engine.build import kernel_sources


def kernel_selections() -> dict:
    """{label: selection} for the reference kernels and every board selection
    that compiles a different set of files."""
    out, seen = {"reference": ()}, {tuple(kernel_sources(()))}
    for b in list_boards():
        files = tuple(kernel_sources(b.kernels))
        if files not in seen:
            seen.add(files)
            out["+".join(b.kernels)] = b.kernels
    return out


SELECTIONS = kernel_selections()


class Kernels:
    """numpy-in, numpy-out access to the C kernels (float32, C-contiguous)."""

    def __init__(self, ffi, lib):
        self.ffi, self.lib = ffi, lib

    # ------------------------------------------------------------ buffers
    def f(self, a):
        """A float* view of a float32 C-contiguous array (or NULL for None)."""
        if a is None:
            return self.ffi.NULL
        assert a.dtype == np.float32 and a.flags.c_contiguous
        return self.ffi.from_buffer("float[]", a)

    def u8(self, a):
        if a is None:
            return self.ffi.NULL
        assert a.dtype == np.uint8 and a.flags.c_contiguous
        return self.ffi.from_buffer("uint8_t[]", a)

    def u16(self, sel):
        sel = np.ascontiguousarray(sel, dtype=np.uint16)
        if sel.size == 0:
            return self.ffi.NULL, sel
        return self.ffi.from_buffer("uint16_t[]", sel), sel

    def conv_p(self, P):
        return self.ffi.new("mdy_conv_params *", {k: P[k] for k in CONV_FIELDS})

    def pool_p(self, P):
        return self.ffi.new("mdy_pool_params *", {k: P[k] for k in POOL_FIELDS})

    # ------------------------------------------------------------ convs
    def conv(self, P, x, w, b=None):
        dw = P["groups"] != 1
        y = np.empty((P["out_h"], P["out_w"], P["out_c"]), np.float32)
        fn = self.lib.mdy_depthwise_conv2d_nhwc_f32 if dw else self.lib.mdy_conv2d_nhwc_f32
        fn(self.conv_p(P), self.f(f32(x)), self.f(f32(w)), self.f(None if b is None else f32(b)),
           self.f(y))
        return y

    def conv_igrad(self, P, w, dy, dx=None, accumulate=0):
        dw = P["groups"] != 1
        out = (np.full((P["in_h"], P["in_w"], P["in_c"]), np.nan, np.float32)
               if dx is None else f32(dx).copy())
        fn = (self.lib.mdy_depthwise_conv2d_nhwc_f32_igrad if dw
              else self.lib.mdy_conv2d_nhwc_f32_igrad)
        fn(self.conv_p(P), self.f(f32(w)), self.f(f32(dy)), self.f(out), accumulate)
        return out

    def conv_wgrad(self, P, x_maps, sel, dy, dw_slices):
        """x_maps: [n_sel][in_h][in_w]; dw_slices (updated copy returned)."""
        dwk = P["groups"] != 1
        out = f32(dw_slices).copy()
        psel, keep = self.u16(sel)
        fn = (self.lib.mdy_depthwise_conv2d_nhwc_f32_wgrad if dwk
              else self.lib.mdy_conv2d_nhwc_f32_wgrad)
        xm = f32(x_maps)
        fn(self.conv_p(P), self.f(xm) if xm.size else self.ffi.NULL, psel, len(keep),
           self.f(f32(dy)), self.f(out) if out.size else self.ffi.NULL)
        return out


CONV_FIELDS = ("in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "k_h", "k_w",
               "stride_h", "stride_w", "pad_top", "pad_left", "groups")
POOL_FIELDS = ("in_h", "in_w", "c", "out_h", "out_w", "k_h", "k_w", "stride_h", "stride_w",
               "pad_top", "pad_left", "count_include_pad")


def f32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


def conv_params(in_h, in_w, in_c, out_c, k_h, k_w, stride=(1, 1), pads=(0, 0, 0, 0),
                depthwise=False):
    """pads = (top, left, bottom, right) as in ONNX [t, l, b, r]; out_h/out_w
    follow the ONNX floor formula."""
    t, l, b, r = pads
    out_h = (in_h + t + b - k_h) // stride[0] + 1
    out_w = (in_w + l + r - k_w) // stride[1] + 1
    assert out_h >= 1 and out_w >= 1
    return dict(in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c,
                k_h=k_h, k_w=k_w, stride_h=stride[0], stride_w=stride[1],
                pad_top=t, pad_left=l, groups=in_c if depthwise else 1, pads=pads)


def pool_params(in_h, in_w, c, k_h, k_w, stride=(1, 1), pads=(0, 0, 0, 0),
                count_include_pad=0):
    t, l, b, r = pads
    out_h = (in_h + t + b - k_h) // stride[0] + 1
    out_w = (in_w + l + r - k_w) // stride[1] + 1
    assert out_h >= 1 and out_w >= 1
    return dict(in_h=in_h, in_w=in_w, c=c, out_h=out_h, out_w=out_w, k_h=k_h, k_w=k_w,
                stride_h=stride[0], stride_w=stride[1], pad_top=t, pad_left=l,
                count_include_pad=count_include_pad, pads=pads)
