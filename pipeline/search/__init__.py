"""The Optuna study: its space, storage, trials, and the way back to DVC."""
