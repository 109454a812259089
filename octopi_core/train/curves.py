"""Training curves: loss and validation F-beta per epoch, drawn from ``metrics.jsonl`` to ``curves.png``."""

from __future__ import annotations

import json
from pathlib import Path

from ..particles import PARTICLE_CLASSES

__all__ = ["plot_curves"]


def plot_curves(out: Path) -> None:
    """Draw ``out/metrics.jsonl`` to ``out/curves.png``: training loss and validation F-beta per class.

    Args:
        out: the run's output directory.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot([r["epoch"] for r in records], [r["loss"] for r in records])
    left.set(xlabel="epoch", ylabel="training loss", yscale="log")
    scored = [r for r in records if "f_beta" in r]
    for name in (p.name for p in PARTICLE_CLASSES):
        right.plot([r["epoch"] for r in scored], [r["f_beta"][name] for r in scored], label=name)
    right.plot([r["epoch"] for r in scored], [r["weighted_f_beta"] for r in scored], "k--", label="weighted")
    right.set(xlabel="epoch", ylabel="validation F-beta (beta=4)", ylim=(0, 1))
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=80)
    plt.close(fig)
