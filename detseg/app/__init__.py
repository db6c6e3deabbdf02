"""Application layer: wires config, data, model, engine and evaluation into training, evaluation and
inference (what tools/ calls). One job a module: task (model and data tasks agree), model_loading
(models to train or as trained, their label space), loaders, inference, evaluate (evaluators and the
one evaluation loop), predictor, auto_sizes, media; pipeline gathers the entry points."""
