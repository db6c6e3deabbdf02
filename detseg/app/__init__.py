"""Application layer: wires config, data, model, engine and evaluation into training, evaluation and
inference (what tools/ calls)."""
