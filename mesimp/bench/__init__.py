"""The speed benchmark suite (``python -m mesimp.bench``)."""
