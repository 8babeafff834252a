"""The MLflow store: its URL (urls), refused before MLflow opens it (check), opened with lock
retries and reachability checks (access), runs a dead process left RUNNING (stale)."""
