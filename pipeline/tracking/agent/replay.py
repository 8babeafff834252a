"""Send what trainings kept in their spools: the points and the final status."""

from __future__ import annotations

from pathlib import Path

from pipeline.tracking.agent.sender import Sender
from pipeline.tracking.agent.spool import Spool
from pipeline.tracking.store.access import (
    retry_locked,
    store_client,
    unreachable,
    unreachable_error,
)
from pipeline.tracking.store.check import check_store


def replay(spool_dir: Path, tracking_uri: str | None = None) -> list[str]:
    """Send what trainings could not: every spool's points and final status. One line per run."""
    from pipeline.process.errors import InputError

    report = []
    for meta in sorted(spool_dir.glob("*.json")):
        spool = Spool(meta)
        spool.tracking_uri = tracking_uri or spool.tracking_uri
        with spool.sending() as ours:
            if not ours:
                report.append(f"run {spool.run_id}: its training is still sending; skipped")
                continue
            named = "--tracking-uri" if tracking_uri else f"tracking_uri of {meta}"
            check_store(spool.tracking_uri, named=named)
            if reason := unreachable(spool.tracking_uri):
                raise unreachable_error(spool.tracking_uri, reason)
            sender = Sender(spool, no_more_points=lambda wait: True)
            if not sender.run():
                raise InputError(
                    f"{spool.points}: the points of run {spool.run_id} could not be sent to "
                    f"{spool.tracking_uri}; they stay there (see the warning above)"
                )
            if spool.status:
                client = sender.client or store_client(spool.tracking_uri)
                retry_locked(client.set_terminated, spool.run_id, status=spool.status)
            spool.remove()
        status = f", marked {spool.status}" if spool.status else ""
        report.append(f"run {spool.run_id}: {sender.sent_points} metric points sent{status}")
    return report
