"""`s2tf eval`: the paper's metrics (identity, retrieval, matching AUC, attributes, lip sync, quality)."""
