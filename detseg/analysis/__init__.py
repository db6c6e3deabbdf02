"""Model anatomy: per-layer parameters, FLOPs, output shapes and receptive fields (tools/summary.py)."""
from detseg.analysis.receptive_field import ReceptiveField, ReceptiveFieldTracker, chain
from detseg.analysis.summary import FeatureRow, LayerRow, Summary, summarize

__all__ = ["FeatureRow", "LayerRow", "ReceptiveField", "ReceptiveFieldTracker", "Summary", "chain", "summarize"]
