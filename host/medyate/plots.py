"""PNG plots of results people would rather see than read."""
from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")


def plot_training(history: list[dict], path, title: str = "") -> None:
    """Accuracy (train, test) and loss per epoch."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [r["epoch"] for r in history]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.plot(ep, [100 * r["train_acc"] for r in history], "o-", label="train")
    a1.plot(ep, [100 * r["test_acc"] for r in history], "s-", label="test")
    if history and "test_acc_before" in history[0]:
        a1.axhline(100 * history[0]["test_acc_before"], color="grey", ls="--",
                   label="test, before fine-tuning")
    a1.set_xlabel("epoch")
    a1.set_ylabel("top-1 accuracy (%)")
    a1.grid(alpha=0.3)
    a1.legend()
    a2.plot(ep, [r["loss"] for r in history], "o-", label="train")
    a2.plot(ep, [r["test_loss"] for r in history], "s-", label="test")
    a2.set_xlabel("epoch")
    a2.set_ylabel("cross-entropy loss")
    a2.grid(alpha=0.3)
    a2.legend()
    from matplotlib.ticker import MaxNLocator
    for ax in (a1, a2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
