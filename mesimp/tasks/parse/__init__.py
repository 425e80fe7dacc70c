"""Transition-based dependency parsing (Chen & Manning 2014 features, arc-standard) with meProp and meSimp."""

from mesimp.tasks.parse.pipeline import build, data_files

__all__ = ["build", "data_files"]
