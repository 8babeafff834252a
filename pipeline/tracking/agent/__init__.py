"""The out-of-process MLflow logger: spool, sender, replay."""
