"""meProp layers: plain PyTorch, usable in any model."""

from mesimp.nn.convert import convert_to_meprop, k_for_width
from mesimp.nn.lstm import MePropLSTM
from mesimp.nn.meprop import BackwardReport, MePropLinear, ReportsBackward, effective_k, select_units

__all__ = ["BackwardReport", "MePropLSTM", "MePropLinear", "ReportsBackward", "convert_to_meprop", "effective_k",
           "k_for_width", "select_units"]
