"""The generation report: a Markdown page with CLIPScore, diversity, FID and KID per encoder, and plots."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from polymodal.eval.generation import GenerationResult
from polymodal.eval.report import _pyplot

MAX_PROMPT_BARS = 30  # beyond this the per-prompt chart is unreadable; the table in results.json has them all


def _num(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def generation_report(results: list[GenerationResult], out: Path) -> Path:
    plt = _pyplot()
    out.mkdir(parents=True, exist_ok=True)
    first = results[0]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for r in results:
        ax.hist(r.per_image, bins=min(30, max(5, r.images // 2)), alpha=0.5, label=r.model)
    ax.set_xlabel("CLIPScore = 2.5 · max(cos, 0)")
    ax.set_ylabel("images")
    ax.set_title("CLIPScore of each image against its prompt")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "clip_score_hist.png", dpi=110)
    plt.close(fig)
    prompts = list(first.per_prompt)[:MAX_PROMPT_BARS]
    fig, ax = plt.subplots(figsize=(max(5, 0.5 * len(prompts) * len(results) + 2), 3.8))
    width = 0.8 / len(results)
    for j, r in enumerate(results):
        ax.bar([i + j * width for i in range(len(prompts))], [r.per_prompt[p] for p in prompts], width,
               label=r.model)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(prompts))],
                  [p if len(p) <= 28 else p[:27] + "…" for p in prompts], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("mean CLIPScore")
    ax.set_title("per prompt")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "clip_score_per_prompt.png", dpi=110)
    plt.close(fig)
    lines = [f"# Generation: {first.dataset}", "",
             f"{first.images} images of {first.prompts} prompts. CLIPScore (Hessel et al. 2021) is 2.5 · max(cos, 0) "
             "of each image against its prompt; diversity is the mean pairwise cosine distance (1 − cos) among the "
             "images of one prompt, averaged over prompts with at least two images. FID and KID compare the image "
             "embeddings with those of the reference folder; each number holds only under the encoder named "
             "beside it (the feature extractor).", ""]
    if first.reference:
        lines += [f"Reference: `{first.reference}` ({first.reference_images} images).", ""]
    lines += ["| encoder (feature extractor) | dim | CLIPScore mean | std | diversity | FID | KID mean | KID std |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        kid = r.kid or {}
        lines.append(f"| {r.model} | {r.feature_dim} | {_num(r.clip_score['mean'])} | {_num(r.clip_score['std'])} | "
                     f"{_num(r.diversity)} | {_num(r.fid)} | {_num(kid.get('mean'), 6)} | {_num(kid.get('std'), 6)} |")
    lines += ["", "![CLIPScore distribution](clip_score_hist.png)", "",
              "![CLIPScore per prompt](clip_score_per_prompt.png)", ""]
    if len(first.per_prompt) > MAX_PROMPT_BARS:
        lines += [f"(the chart shows the first {MAX_PROMPT_BARS} of {len(first.per_prompt)} prompts; "
                  "results.json has all of them)", ""]
    page = out / "report.md"
    page.write_text("\n".join(lines), encoding="utf-8")
    (out / "results.json").write_text(json.dumps([asdict(r) for r in results], indent=1), encoding="utf-8")
    return page
