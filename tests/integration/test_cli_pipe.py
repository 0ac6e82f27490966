"""`headrace … | head`: the reader goes away before the output ends; the command stops quietly (no traceback),
with the shell's status for a closed pipe."""

from __future__ import annotations

import subprocess
import sys


def test_a_closed_pipe_ends_the_command_without_a_traceback():
    process = subprocess.Popen(
        [sys.executable, "-m", "headrace.cli", "samples"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # like `head` that has read its lines
    error = process.stderr.read().decode()
    process.stderr.close()
    assert process.wait(60) == 141 and error == "", error
