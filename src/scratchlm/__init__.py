"""scratchlm: pretrain language models from scratch, fine-tune them per task, and trust the numbers."""

__version__ = "0.1.0"
