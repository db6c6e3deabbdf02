"""Run reports: plots of the training history, PR curves, confusion matrix and label statistics."""
from detseg.reports.labels import label_statistics
from detseg.reports.run import write_evaluation_files, write_label_statistics, write_plots, write_plots_safely

__all__ = ["label_statistics", "write_evaluation_files", "write_label_statistics", "write_plots",
           "write_plots_safely"]
