"""llmtap-cost-by-tag: an example llmtap plugin that sums call cost per tag (see README.md)."""

NAME = "cost-by-tag"
