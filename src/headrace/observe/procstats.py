"""The standard `process_*` metrics, read from /proc/self on Linux (no dependency).

Names and meanings follow the Prometheus client libraries, so stock dashboards and alerts work:
process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
process_open_fds, process_max_fds, process_start_time_seconds. Where /proc is missing (not Linux),
only what `resource` can tell is exported.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

PROC = Path("/proc")
_HELP = {
    "process_cpu_seconds_total": ("counter", "Total user and system CPU time spent in seconds."),
    "process_resident_memory_bytes": ("gauge", "Resident memory size in bytes."),
    "process_virtual_memory_bytes": ("gauge", "Virtual memory size in bytes."),
    "process_open_fds": ("gauge", "Number of open file descriptors."),
    "process_max_fds": ("gauge", "Maximum number of open file descriptors."),
    "process_start_time_seconds": ("gauge", "Start time of the process since unix epoch in seconds."),
}
_boot_time: float | None = None


def _btime(proc: Path) -> float:
    global _boot_time
    if _boot_time is None:
        for line in (proc / "stat").read_text().splitlines():
            if line.startswith("btime "):
                _boot_time = float(line.split()[1])
                break
        else:
            raise OSError("no btime in /proc/stat")
    return _boot_time


def sample(proc: Path = PROC) -> dict[str, float]:
    """The process_* values for this process now."""
    values: dict[str, float] = {"process_max_fds": float(resource.getrlimit(resource.RLIMIT_NOFILE)[0])}
    try:
        stat = (proc / "self" / "stat").read_text()
        # Fields after the command name (which may hold spaces and parentheses); see proc(5).
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks = os.sysconf("SC_CLK_TCK")
        values["process_cpu_seconds_total"] = (int(fields[11]) + int(fields[12])) / ticks
        values["process_start_time_seconds"] = _btime(proc) + int(fields[19]) / ticks
        values["process_virtual_memory_bytes"] = float(fields[20])
        values["process_resident_memory_bytes"] = float(int(fields[21]) * os.sysconf("SC_PAGE_SIZE"))
        values["process_open_fds"] = float(len(os.listdir(proc / "self" / "fd")))
    except (OSError, ValueError, IndexError):
        usage = resource.getrusage(resource.RUSAGE_SELF)
        values["process_cpu_seconds_total"] = usage.ru_utime + usage.ru_stime
    return values


def render() -> str:
    out = []
    for name, value in sample().items():
        kind, text = _HELP[name]
        number = repr(value) if name in ("process_cpu_seconds_total", "process_start_time_seconds") else f"{value:.0f}"
        out.append(f"# HELP {name} {text}\n# TYPE {name} {kind}\n{name} {number}\n")
    return "".join(out)
