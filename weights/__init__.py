"""Embedded default weights, installed with the package as `s2tf_cli.weights`.

Each sub-folder is one model in the Hugging Face Hub layout: config.json, model.safetensors, README.md.
"""
