"""torchvision models seen from detseg: weight import into detseg models and twin models for parity
benchmarks."""
