"""POS tagging with an LSTM (the paper's POS-Tag task)."""

from mesimp.tasks.pos.pipeline import build

__all__ = ["build"]
