"""Independent numpy implementation of the integer semantics of TTE's int8 models, as
shared/models/tte/README.md (and models/README.md) state them. Written from those rules
alone, sharing no code with the converter (`medyate.ir.tte_import`): the converter and
onnxruntime are checked against it, and it is checked against the published top-5s.
"""
from __future__ import annotations

import io
import pickle
import zipfile

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def load_cfg(path) -> dict:
    """Plain pickle in the zip; only numpy's array globals may be resolved."""
    import _codecs
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    ok = {("numpy.core.multiarray", "_reconstruct"): _reconstruct,
          ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
          ("_codecs", "encode"): _codecs.encode}

    class U(pickle.Unpickler):
        def find_class(self, module, name):
            return ok[(module, name)]

    return U(io.BytesIO(zipfile.ZipFile(path).read("archive/data.pkl"))).load()


def conv_int(x, w, stride, groups):
    """Integer conv, zero padding (k-1)/2, exact in float64: x [C,H,W], w [O,C/g,k,k]."""
    O, Ig, kh, kw = w.shape
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    xp = np.pad(x, ((0, 0), (ph, ph), (pw, pw)))
    win = sliding_window_view(xp, (kh, kw), axis=(1, 2))[:, ::stride, ::stride]
    C, Ho, Wo = win.shape[:3]
    win = win.reshape(groups, C // groups, Ho, Wo, kh, kw)
    wg = w.reshape(groups, O // groups, Ig, kh, kw).astype(np.float64)
    return np.einsum("gchwij,gocij->gohw", win, wg, optimize=True).reshape(O, Ho, Wo)


def conv(c, q):
    """acc = conv(x - x_zero, w) + bias; y = clamp(round(acc * eff) + y_zero, -128, 127),
    eff = x_scale * w_scales / y_scale in double, round half to even."""
    p = c["params"]
    acc = conv_int(q.astype(np.float64) - int(p["x_zero"]), p["weight"], int(c["stride"]),
                   int(c["groups"])) + p["bias"].astype(np.float64)[:, None, None]
    eff = np.float64(p["x_scale"]) * p["w_scales"].astype(np.float64) / np.float64(p["y_scale"])
    return np.clip(np.round(acc * eff[:, None, None]) + int(p["y_zero"]), -128, 127)


def add(a, za, sa, b, zb, sb, zy, sy):
    """y = clamp(round(((a - za) sa + (b - zb) sb) / sy) + zy, -128, 127)."""
    v = ((a - za) * np.float64(sa) + (b - zb) * np.float64(sb)) / np.float64(sy)
    return np.clip(np.round(v) + zy, -128, 127)


def forward(cfg, code):
    """code: the int8 input code [3, H, W] (trunc(pixel - 127.5)) -> int8 logits codes."""
    q = conv(cfg["first_conv"], code)
    for b in cfg["blocks"]:
        x = q
        for k in ("pointwise1", "depthwise", "pointwise2"):
            if b[k] is not None:
                q = conv(b[k], q)
        if b["residual"] is not None:
            r, p2 = b["residual"]["params"], b["pointwise2"]["params"]
            q = add(x, r["x_zero"], r["x_scale"], q, p2["y_zero"], p2["y_scale"],
                    r["y_zero"], r["y_scale"])
    if cfg["feature_mix"] is not None:
        q = conv(cfg["feature_mix"], q)
    q = np.round(q.mean(axis=(1, 2), keepdims=True))        # mean of the codes, rounded
    return conv(cfg["classifier"], q).reshape(-1)


def logits(cfg, code):
    p = cfg["classifier"]["params"]
    return (forward(cfg, code) - p["y_zero"]) * p["y_scale"]


def sample_images(size=128):
    """sklearn's two bundled photos, center-cropped to a square and resized with PIL's
    bilinear filter (antialiased when shrinking) to uint8: [(name, rgb [size, size, 3])].
    This is the preprocessing under which the README's top-5 table was produced."""
    from PIL import Image
    from sklearn.datasets import load_sample_images
    d = load_sample_images()
    out = []
    for fname, img in zip(d.filenames, d.images):
        h, w = img.shape[:2]
        s = min(h, w)
        t, l = (h - s) // 2, (w - s) // 2
        sq = Image.fromarray(np.ascontiguousarray(img[t:t + s, l:l + s]))
        out.append((fname.replace("\\", "/").rsplit("/", 1)[-1],
                    np.asarray(sq.resize((size, size), Image.BILINEAR), dtype=np.uint8)))
    return out


def input_code(rgb_u8):
    """TTE's MCU transform: the int8 code trunc(pixel - 127.5), CHW."""
    return np.trunc(rgb_u8.astype(np.float64) - 127.5).transpose(2, 0, 1)
