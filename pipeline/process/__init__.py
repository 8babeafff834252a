"""Signals and exit codes, lifelines (children die with their parent), atomic files."""
