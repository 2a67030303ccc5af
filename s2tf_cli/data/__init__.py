"""Corpus tools: synthesise a talking-face corpus in VoxCeleb2's raw layout, and prepare any such tree
into training shards."""
