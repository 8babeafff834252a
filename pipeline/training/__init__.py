"""The training loop (pure, with callbacks), one training's set-up, the train stage's work."""
