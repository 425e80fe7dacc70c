"""POS tagging with an LSTM (the paper's POS-Tag task)."""

from mesimp.tasks.pos.pipeline import build, data_files

__all__ = ["build", "data_files"]
