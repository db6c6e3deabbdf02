"""Training engine: runs the model it is given (trainer, optimizer and schedule, precision, run folder).
It knows no dataset or evaluator class; the application layer (detseg.app) hands it both."""
