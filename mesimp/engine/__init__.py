"""Task-independent training machinery: the loop, checkpoints, backward measurement."""
