"""Metrics maths and plots."""
