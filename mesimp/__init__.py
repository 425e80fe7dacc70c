"""mesimp: minimal-effort back propagation (meProp) and model simplification (meSimp) in PyTorch."""

__version__ = "0.1.0"
