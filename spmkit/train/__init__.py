"""Task-agnostic training engine: run folders, launch, DDP, the training loop, checkpoints, metrics."""
