"""The transformer of a loaded sentence-transformers model, as a module an exporter can
trace: reloaded from the local files in eager attention, inference mode, with keyword inputs
in a fixed order and the last hidden state as its one output. The ONNX and OpenVINO backends
both convert this module; pooling and normalisation stay outside it, in NumPy.

torch and transformers are imported only when called.
"""

from __future__ import annotations

from typing import Any, NamedTuple

#: The tokenizer outputs a transformer may take, in the order they are passed to the module.
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class Traceable(NamedTuple):
    module: Any  # a torch.nn.Module: (*tensors in ``names`` order) -> last hidden state
    sample: tuple  # example input tensors, one per name
    names: list[str]  # the input names this tokenizer gives, in ``INPUTS`` order
    config: Any  # the transformers config (heads, hidden size)


def last_hidden(model: Any, target: str) -> Traceable:
    """The transformer of ``model`` from the local files ``target`` names (never the
    network). Eager attention traces as plain MatMul/Softmax, which both ONNX Runtime's
    fusion and OpenVINO turn into their own attention kernels; the SDPA form does not fuse."""
    import torch
    from transformers import AutoModel

    hf = AutoModel.from_pretrained(target, attn_implementation="eager", local_files_only=True)
    hf.train(False)  # inference mode (dropout off)
    sample = model.tokenizer(["an example text", "two"], padding=True, return_tensors="pt")
    names = [n for n in INPUTS if n in sample]

    class LastHidden(torch.nn.Module):
        """Keyword inputs in a fixed order (transformers' positional order varies)."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *tensors):
            return self.inner(**dict(zip(names, tensors))).last_hidden_state

    return Traceable(LastHidden(hf), tuple(sample[n] for n in names), names, hf.config)
