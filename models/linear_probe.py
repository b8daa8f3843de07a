"""Linear probe of the bundled ImageNet int8 models on the 3x128x128 downstream tasks:
a logistic regression (scikit-learn defaults, max_iter 2000) on the frozen features the
classifier sees (the global-average-pooled map), onnxruntime evaluating the QDQ model
as ONNX defines it. A reference point for fine-tuning, not a fine-tuning result.

    PYTHONPATH=host .venv/bin/python models/linear_probe.py     # about 1.5 minutes of CPU
"""
from __future__ import annotations

import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = ("mcunet-5fps", "mbv2-w0.35", "proxyless-w0.3")
TASKS = ("fmnist-5to9-rgb128", "digits-rgb128")


def features(path, x, batch=50):
    import onnx
    import onnxruntime as ort
    m = onnx.load(path)
    m.graph.output.append(onnx.ValueInfoProto(name="pool.out"))
    so = ort.SessionOptions()
    so.add_session_config_entry("session.disable_quant_qdq", "1")
    so.log_severity_level = 3
    s = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return np.concatenate([s.run(["pool.out"], {"input": x[i:i + batch]})[0]
                           .reshape(len(x[i:i + batch]), -1) for i in range(0, len(x), batch)])


def main():
    from sklearn.linear_model import LogisticRegression

    from medyate.data import load_task
    print("| model | " + " | ".join(TASKS) + " |")
    print("|---|" + "---|" * len(TASKS))
    tasks = {t: load_task(t, seed=0) for t in TASKS}
    for m in MODELS:
        path = os.path.join(HERE, f"{m}.onnx")
        accs = []
        for t in tasks.values():
            clf = LogisticRegression(max_iter=2000).fit(features(path, t.x_train), t.y_train)
            accs.append(clf.score(features(path, t.x_test), t.y_test))
        print(f"| {m} | " + " | ".join(f"{100 * a:.1f} %" for a in accs) + " |")


if __name__ == "__main__":
    main()
