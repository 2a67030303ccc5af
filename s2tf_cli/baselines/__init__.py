"""Baselines the evaluation compares S2TF with, trained on the same corpus."""
