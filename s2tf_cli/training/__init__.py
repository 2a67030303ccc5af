"""Training: the paper's three-stage curriculum (§3.3), checkpoints, export."""
