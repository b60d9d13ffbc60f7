"""Reports: a Markdown page with tables and matplotlib plots, several models side by side."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from polymodal.eval.tasks import RetrievalResult, ZeroShotResult


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_")[:60] or "model"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> None:
    """Lay out, write and close a report's figure (pyplot holds every open figure until it is closed)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a Markdown table."""
    return [f"| {' | '.join(cells)} |" for cells in [header, ["---"] * len(header), *rows]]


def write_report(out: Path, lines: list[str], results: list[dict[str, Any]]) -> Path:
    """``out``/report.md from ``lines`` and ``out``/results.json from ``results``; the page's path."""
    page = out / "report.md"
    page.write_text("\n".join(lines), encoding="utf-8")
    (out / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    return page


def retrieval_report(results: list[RetrievalResult], out: Path) -> Path:
    plt = _pyplot()
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for r in results:
        axes[0].plot(r.curve_ks, r.curve_t2i, label=r.model)
        axes[1].plot(r.curve_ks, r.curve_i2t, label=r.model)
    for ax, title in zip(axes, ("text → image", "image → text")):
        ax.set_title(title)
        ax.set_xlabel("K")
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Recall@K")
    axes[1].legend(fontsize=8)
    save_figure(fig, out / "recall_at_k.png")
    ks = list(results[0].text_to_image)
    lines = [f"# Retrieval: {results[0].dataset}", "",
             f"{results[0].images} images, {results[0].captions} captions. Recall@K as CLIP_benchmark defines it:",
             "text → image counts captions whose image is in the top K; image → text counts images with at least",
             "one of their captions in the top K.", ""]
    lines += markdown_table(["model", *(f"t→i {k}" for k in ks), *(f"i→t {k}" for k in ks)],
                            [[r.model, *(f"{100 * r.text_to_image[k]:.2f}" for k in ks),
                              *(f"{100 * r.image_to_text[k]:.2f}" for k in ks)] for r in results])
    lines += ["", "![Recall@K](recall_at_k.png)", ""]
    return write_report(out, lines, [asdict(r) for r in results])


def zeroshot_report(results: list[ZeroShotResult], out: Path) -> Path:
    plt = _pyplot()
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# Zero-shot classification: {results[0].dataset}", ""]
    lines += markdown_table(["model", "acc@1", "acc@5", "mean per-class recall", "templates"],
                            [[r.model, f"{100 * r.acc1:.2f}", "—" if r.acc5 is None else f"{100 * r.acc5:.2f}",
                              f"{100 * r.mean_per_class_recall:.2f}", str(r.templates)] for r in results])
    for r in results:
        slug = _slug(r.model)
        n = len(r.classes)
        fig, ax = plt.subplots(figsize=(max(4, 0.5 * n + 2), max(3.5, 0.5 * n + 1.5)))
        ax.imshow(r.confusion, cmap="Blues")
        ax.set_xticks(range(n), r.classes, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(n), r.classes, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(r.confusion[i][j]), ha="center", va="center", fontsize=7)
        ax.set_title(f"confusion: {r.model}")
        save_figure(fig, out / f"confusion_{slug}.png")
        fig, ax = plt.subplots(figsize=(max(4, 0.4 * n + 2), 3))
        ax.bar(range(n), r.per_class_recall)
        ax.set_xticks(range(n), r.classes, rotation=45, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("recall")
        ax.set_title(f"per-class recall: {r.model}")
        save_figure(fig, out / f"per_class_{slug}.png")
        lines += ["", f"## {r.model}", ""]
        per_class = zip(r.classes, r.per_class_recall, r.support)
        lines += markdown_table(["class", "recall", "images"], [[c, f"{100 * x:.1f}", str(k)] for c, x, k in per_class])
        lines += ["", f"![confusion](confusion_{slug}.png)", "", f"![per-class recall](per_class_{slug}.png)"]
    return write_report(out, [*lines, ""], [asdict(r) for r in results])
