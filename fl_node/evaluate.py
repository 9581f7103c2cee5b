"""Loss of any adapter on fixed data: what an aggregator with its own validation data measures.

:class:`AdapterEvaluator` is the ``Evaluator`` the aggregator's verification takes
(``(tensors, peft spec) -> loss``): it attaches a fresh adapter of the given settings to the
loaded base model, loads the tensors, measures the token-weighted loss on the assistant
replies (the same loss training reports) and removes the adapter again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from fl_node.data import DataError, Example, encode_all
from fl_node.model import LoadedModel
from fl_node.train import attach_adapter, detach_adapter, evaluate
from loraledger.errors import UpdateRejected
from loraledger.update import REASON_BAD_SHAPE, PeftSpec


class AdapterEvaluator:
    """Evaluates adapters of any peft settings on ``examples`` with ``model``."""

    def __init__(
        self,
        model: LoadedModel,
        examples: Sequence[Example],
        *,
        max_length: int = 256,
        batch_size: int = 8,
    ) -> None:
        self.model = model
        self.batch_size = batch_size
        self.encoded = encode_all(model.tokenizer, examples, max_length)
        if not self.encoded:
            raise DataError(
                f"none of the {len(examples)} validation examples has reply tokens within "
                f"max_length={max_length}",
                hint="give more validation examples or raise max_length",
            )

    def __call__(self, tensors: Mapping[str, torch.Tensor], spec: PeftSpec) -> float | None:
        from peft import set_peft_model_state_dict

        peft_model = attach_adapter(self.model, spec)
        try:
            try:
                result = set_peft_model_state_dict(peft_model, dict(tensors))
            except RuntimeError as exc:  # shape mismatch (size mismatch for ...)
                raise UpdateRejected(
                    REASON_BAD_SHAPE, f"the adapter does not fit the model: {exc}"
                ) from None
            unexpected: list[str] = list(getattr(result, "unexpected_keys", []))
            missing = [k for k in unexpected if "lora_" in k or "prompt" in k]
            if missing:
                raise UpdateRejected(REASON_BAD_SHAPE, f"the model has no place for {missing[:3]}")
            return evaluate(peft_model, self.model, self.encoded, self.batch_size)
        finally:
            detach_adapter(peft_model, self.model)
