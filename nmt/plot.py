"""Pictures: attention heatmaps and learning curves (matplotlib is an optional extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nmt.errors import ConfigError


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("plots need matplotlib: pip install 'nmt[plot]'") from None
    return plt


def attention_heatmap(weights: Any, src: list[str], tgt: list[str], path: Path) -> None:
    """Heatmap of attention weights (target rows x source columns) to a PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4, 0.4 * len(src) + 2), max(3, 0.4 * len(tgt) + 2)))
    ax.imshow(weights, cmap="Greys", aspect="auto", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(src)), src, rotation=90)
    ax.set_yticks(range(len(tgt)), tgt)
    ax.set_xlabel("source")
    ax.set_ylabel("target")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def learning_curves(records: list[dict[str, Any]], path: Path, x: str = "step") -> None:
    """Training loss and validation BLEU against the update step or the wall clock ("time",
    minutes since the run began: time-to-quality comparisons), to a PNG."""
    if x not in ("step", "time"):
        raise ConfigError(f"x axis must be step or time, got {x!r}")
    if x == "time" and any("elapsed_s" not in r for r in records
                           if r.get("kind") in ("train", "valid")):
        raise ConfigError(
            "this run's metrics have no elapsed_s (written by older versions): use step"
        )
    plt = _pyplot()
    at = (lambda r: r["step"]) if x == "step" else (lambda r: r["elapsed_s"] / 60)
    label = "step" if x == "step" else "wall time (minutes)"
    train = [r for r in records if r.get("kind") == "train"]
    valid = [r for r in records if r.get("kind") == "valid"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot([at(r) for r in train], [r["loss"] for r in train])
    left.set_xlabel(label)
    left.set_ylabel("training loss (per token)")
    tasks = sorted({k for r in valid for k, v in r.items() if isinstance(v, dict)})
    for task in tasks:
        points = [(at(r), r[task]["bleu"]) for r in valid if task in r]
        right.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=task)
    right.set_xlabel(label)
    right.set_ylabel("validation BLEU")
    if tasks:
        right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
