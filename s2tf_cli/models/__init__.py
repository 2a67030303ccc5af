"""The S2TF networks, one module per part of the paper's Fig. 1."""
