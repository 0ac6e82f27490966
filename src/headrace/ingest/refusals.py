"""Refusals are counted in memory and sampled to the store, so a flood of bad requests costs about what a
flood of /healthz costs.

Every refusal is counted (`headrace_events_rejected_total{source,reason}`, this process, since start). Per
source, reason and minute, only the first `[server] rejections_per_minute` are written to the store (with a
log line each); the rest of that minute become one summary row ("N more ... were counted but not recorded")
written when the minute is over (or at shutdown). Unknown source names are pooled under "(unknown)" for
sampling, so invented names cannot grow this table.
"""

from __future__ import annotations

from datetime import UTC, datetime

from headrace.models import Rejection

UNKNOWN = "(unknown)"


class RefusalSampler:
    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._minute: int | None = None
        self._seen: dict[tuple[str, str], tuple[int, int]] = {}  # (source, reason) -> (count, status)

    def admit(self, source: str, reason: str, status: int, now: float) -> tuple[bool, list[Rejection]]:
        """Whether to record this refusal in full; and the summaries of a minute that just ended, to write."""
        summaries = self.due(now)
        key = (source, reason)
        count = self._seen.get(key, (0, status))[0] + 1
        self._seen[key] = (count, status)
        return count <= self.per_minute, summaries

    def due(self, now: float, *, final: bool = False) -> list[Rejection]:
        """Summaries of the minute that ended before `now` (of the current one too when `final`)."""
        minute = int(now // 60)
        if self._minute == minute and not final:
            return []
        summaries = []
        if self._minute is not None:
            start = datetime.fromtimestamp(self._minute * 60, UTC).strftime("%H:%M")
            at = min(now, self._minute * 60 + 59.999)
            for (source, reason), (count, status) in self._seen.items():
                extra = count - self.per_minute
                if extra > 0:
                    detail = (
                        f"{extra} more refusal(s) like this in the minute from {start} UTC were counted "
                        "(headrace_events_rejected_total) but not recorded ([server] rejections_per_minute)"
                    )
                    summaries.append(Rejection(source, reason, status, detail, "", at))
        self._minute = minute
        self._seen.clear()
        return summaries
