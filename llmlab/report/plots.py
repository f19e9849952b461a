"""The report's loss curves: one panel per training stage that has metrics, as PNG bytes.

    png = loss_curves_png(facts["stages"])   # None when no stage has logged a step yet

Pre-training: train loss (nats/token) per step and held-out bits per byte; SFT: train loss and held-out loss per
trained token; DPO: the DPO + RPO loss and the held-out preference accuracy (chosen answer more likely).
"""

from __future__ import annotations

import io

# stage -> (panel title, held-out metric drawn on the right axis, its label)
PANELS = {
    "pretrain": ("pre-training", "val_bpb", "held-out bits per byte"),
    "sft": ("SFT", "val_loss", "held-out loss"),
    "prefs": ("DPO", "pref_accuracy", "held-out preference accuracy"),
}


def loss_curves_png(stages: dict) -> bytes | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = [(name, s["metrics"]) for name, s in stages.items() if s and any("loss" in r for r in s["metrics"])]
    if not drawn:
        return None
    fig, axes = plt.subplots(1, len(drawn), figsize=(4.2 * len(drawn), 3.4), squeeze=False)
    for ax, (name, rows) in zip(axes[0], drawn):
        title, held_out, held_out_label = PANELS[name]
        train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
        ax.plot(*zip(*train), color="tab:blue", label="train loss")
        ax.set_xlabel("step")
        ax.set_ylabel("train loss", color="tab:blue")
        ax.set_title(title)
        points = [(r["step"], r[held_out]) for r in rows if held_out in r]
        if points:
            right = ax.twinx()
            right.plot(*zip(*points), "o-", color="tab:orange", markersize=4)
            right.set_ylabel(held_out_label, color="tab:orange")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()
