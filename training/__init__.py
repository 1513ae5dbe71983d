"""cityagent.training: learn models from the hub — Lightning engine, Ray Train jobs, Tune sweeps, MLflow runs.

Entry points: ``cityagent.training.fit.fit(config)`` trains, evaluates and tracks one model;
``cityagent.training.tune.tune(config, samples)`` searches hyperparameters with ASHA;
``cityagent.training.evaluate.evaluate_run(run_id)`` re-scores a logged run. (Submodules are imported on use, so
reading a config with ``cityagent.training.config`` stays light.)
"""
