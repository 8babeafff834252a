"""The MLP, its checkpoint files and inference."""
