"""Devices, threads and the DDP process group and launcher."""
