"""Record one attempt's outcome: the store row (retried when the store fails), the metrics and the log line."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from headrace.models import Cancelled, Delivered, Retry
from headrace.observe import logs
from headrace.observe.metrics import Metrics
from headrace.store.base import DeliveryQueue, Finished

log = logging.getLogger("headrace.deliver")

STORE_RETRY_PAUSES = (0.1, 0.5, 2.0, 5.0)


@dataclass
class OutcomeRecorder:
    store: DeliveryQueue
    metrics: Metrics
    clock: Callable[[], float] = time.time
    pauses: Sequence[float] = STORE_RETRY_PAUSES

    async def record(self, finished: Finished) -> bool:
        """Count, log and store one outcome. A store that fails is tried again after each of `pauses`; True once
        stored (or once the store said another worker owns the delivery), False when every try failed. Then
        the lease expires and the delivery is tried again: its job id keeps that safe."""
        claimed, outcome = finished.claimed, finished.outcome
        fields = {
            "event_id": claimed.event_id,
            "delivery_id": claimed.delivery_id,
            "destination": claimed.destination,
            "webhook_id": claimed.webhook_id,
            "job_id": claimed.job_id,
            "outcome": type(outcome).__name__.lower(),
        }
        name = claimed.destination
        if isinstance(outcome, Retry):
            status = finished.attempt.http_status
            self.metrics.inc(
                "headrace_delivery_retries_total", name, "no_answer" if status is None else f"http_{status}"
            )
        else:
            self.metrics.inc("headrace_deliveries_total", name, str(fields["outcome"]))
        logs.delivery_outcome(fields, None if isinstance(outcome, Delivered | Cancelled) else outcome.reason)
        for pause in (*self.pauses, None):
            try:
                if not await self.store.finish(finished, self.clock()):
                    log.warning("lease lost before the outcome was recorded; another worker owns it", extra=fields)
                return True
            except Exception:
                if pause is None:
                    log.exception("recording an outcome failed; the lease expires and it is tried again", extra=fields)
                    return False
                log.exception("recording an outcome failed; retrying", extra=fields)
                await asyncio.sleep(pause)
        return False
