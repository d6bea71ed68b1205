"""accord.checkpoints."""
