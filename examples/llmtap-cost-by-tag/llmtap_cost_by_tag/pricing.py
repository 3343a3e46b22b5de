"""An example custom cost model: the catalogue price with a negotiated discount, and a
GPU-hour price for self-hosted models (Ollama, vLLM), which the catalogue cannot know."""

from __future__ import annotations

import os

from llmtap.analyzers.pricing import CallUsage

SELF_HOSTED = frozenset({"ollama", "vllm"})


class NegotiatedDiscount:
    """Catalogue price times (1 - LLMTAP_DISCOUNT), self-hosted calls at LLMTAP_GPU_USD_PER_HOUR.

    Instantiated once when the producer starts (it reads its settings then, not per call).
    """

    name = "negotiated-discount"
    fallback = False  # no catalogue price means unpriced, never the undiscounted price

    def __init__(self) -> None:
        self.discount = float(os.environ.get("LLMTAP_DISCOUNT", "0.2"))
        self.gpu_usd_per_hour = float(os.environ.get("LLMTAP_GPU_USD_PER_HOUR", "2.5"))
        if not 0.0 <= self.discount <= 1.0:
            raise ValueError(f"LLMTAP_DISCOUNT: {self.discount} is not between 0 and 1")

    def __call__(self, usage: CallUsage) -> float | None:
        """Return the call's USD price, or None (unpriced) when the catalogue has none."""
        if usage.backend in SELF_HOSTED:
            return (usage.duration_s or 0.0) * self.gpu_usd_per_hour / 3600.0
        listed = usage.catalogue_usd()
        return None if listed is None else listed * (1.0 - self.discount)
