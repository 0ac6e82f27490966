"""A disk whose fsync is slow, for tests and benchmarks: a library loaded with LD_PRELOAD into a process that
sleeps before each `fsync` and `fdatasync` that process makes (the call itself still happens, so nothing is
less durable), as a spinning disk or network storage would take. Built with the machine's C compiler."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

DELAY_VARIABLE = "HEADRACE_TEST_FSYNC_DELAY_US"

SOURCE = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

static void slow(void) {
    const char *text = getenv("HEADRACE_TEST_FSYNC_DELAY_US");
    if (text != NULL) usleep((useconds_t) atoi(text));
}

int fsync(int fd) {
    static int (*real)(int);
    if (real == NULL) real = (int (*)(int)) dlsym(RTLD_NEXT, "fsync");
    slow();
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (real == NULL) real = (int (*)(int)) dlsym(RTLD_NEXT, "fdatasync");
    slow();
    return real(fd);
}
"""


def compiler() -> str | None:
    return shutil.which("cc") or shutil.which("gcc")


def slow_fsync_library(folder: Path) -> Path:
    """Build the library in `folder`; its path (RuntimeError, with the compiler's output, when it cannot)."""
    cc = compiler()
    if cc is None:
        raise RuntimeError("no C compiler (cc or gcc) to build the slow-fsync library with")
    source, library = folder / "slow_fsync.c", folder / "slow_fsync.so"
    source.write_text(SOURCE)
    built = subprocess.run(
        [cc, "-shared", "-fPIC", "-O2", "-o", str(library), str(source), "-ldl"], capture_output=True
    )
    if built.returncode != 0:
        raise RuntimeError(f"{cc} could not build {source}: {built.stderr.decode(errors='replace')[:2000]}")
    return library


def slow_disk_environment(library: Path, delay_ms: float) -> dict[str, str]:
    """What to add to a process's environment for every fsync it makes to take `delay_ms` more."""
    return {"LD_PRELOAD": str(library), DELAY_VARIABLE: str(int(delay_ms * 1000))}
