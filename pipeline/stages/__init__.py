"""Exactly the dvc.yaml stages: `python -m pipeline.stages.<stage>`."""
