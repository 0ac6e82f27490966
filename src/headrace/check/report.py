"""What `headrace check` answers: one Row per check (ok, warn, fail or skip, with the fix), the Report that
holds them, and its two renderings (the table, JSON)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from headrace.dodo import samples

Status = Literal["ok", "warn", "fail", "skip"]


@dataclass(frozen=True)
class Row:
    subject: str  # "destination payments" / "source dodo"
    check: str
    status: Status
    detail: str
    fix: str = ""
    ms: float | None = None
    variant: str = ""  # event rows: the sample variant(s) the row is about ("sample": the plain sample)


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(row.status != "fail" for row in self.rows)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "rows": [asdict(row) for row in self.rows]}

    def table(self) -> str:
        width = max((len(r.subject) for r in self.rows), default=10)
        check_width = max((len(r.check) for r in self.rows), default=10)
        lines = [f"{'SUBJECT':{width}}  {'CHECK':{check_width}}  RESULT  DETAIL"]
        for r in self.rows:
            timing = f" ({r.ms:.1f} ms)" if r.ms is not None else ""
            which = which_samples(r.variant, 1 + len(samples.variants(r.check))) if r.variant else ""
            detail = f"[{which}] {r.detail}" if which else r.detail
            lines.append(f"{r.subject:{width}}  {r.check:{check_width}}  {r.status.upper():6}  {detail}{timing}")
            if r.fix:
                lines.append(f"{'':{width}}  {'':{check_width}}          fix: {r.fix}")
        failed = sum(r.status == "fail" for r in self.rows)
        warned = sum(r.status == "warn" for r in self.rows)
        lines.append("")
        lines.append("all checks passed" if not failed and not warned else f"{failed} failed, {warned} warning(s)")
        return "\n".join(lines)


def which_samples(variant: str, total: int) -> str:
    """How a row names its samples in the table: "" when there is only the plain sample."""
    names = variant.split(",") if variant else []
    if total <= 1 or not names:
        return ""
    if len(names) == total:
        return f"plain sample and all {total - 1} variants"
    plain = ["plain sample"] if "sample" in names else []
    variants = [n for n in names if n != "sample"]
    return ", ".join(plain + ([f"variant{'s' if len(variants) > 1 else ''} {', '.join(variants)}"] if variants else []))


def render_json(report: Report) -> str:
    return json.dumps(report.to_json(), indent=2, ensure_ascii=False)
