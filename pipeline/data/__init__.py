"""Synthetic sets, a user's table, the splits and their files, batching."""
