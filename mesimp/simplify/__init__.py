"""meSimp: count how often each hidden unit is in meProp's top-k, and remove the seldom-active ones for real.

Plain PyTorch, no task code: a model describes its prunable units as :class:`UnitGroup` s, and the
:class:`Simplifier` does the rest.
"""

from mesimp.simplify.activeness import ActivenessRecord
from mesimp.simplify.schedule import OptimizerReset, SimplifySchedule
from mesimp.simplify.simplifier import Simplifier
from mesimp.simplify.units import ParamSlice, UnitGroup, compact_group

__all__ = ["ActivenessRecord", "OptimizerReset", "ParamSlice", "Simplifier", "SimplifySchedule", "UnitGroup",
           "compact_group"]
