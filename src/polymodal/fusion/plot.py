"""The validation curves of a ``--compare`` run as one PNG (matplotlib, imported only here)."""

from __future__ import annotations

from pathlib import Path

from polymodal.errors import MissingDependencyError
from polymodal.fusion.trainer import EpochRecord


def plot_curves(curves: dict[str, list[EpochRecord]], out: Path, title: str = "",
                baselines: dict[str, float] | None = None) -> Path:
    """Validation loss and accuracy per epoch, one line per fusion strategy; each baseline's validation
    accuracy as a dashed level line (they have no epochs)."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: never open a window, never need a display
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError("matplotlib", "the --compare plot") from exc
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for name, hist in curves.items():
        epochs = [h.epoch for h in hist]
        ax_loss.plot(epochs, [h.val_loss for h in hist], label=name)
        ax_acc.plot(epochs, [h.val_accuracy for h in hist], label=name)
    for i, (name, acc) in enumerate((baselines or {}).items()):
        ax_acc.axhline(acc, linestyle="--", color=f"C{len(curves) + i}", label=f"{name} ({acc:.2f})")
    ax_loss.set(xlabel="epoch", ylabel="validation loss", title="validation loss")
    ax_acc.set(xlabel="epoch", ylabel="validation accuracy", title="validation accuracy", ylim=(0, 1.02))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
