"""The `headrace` command: main.py parses the arguments and dispatches; db, tools, connect, dodo and reconcile
hold the commands by subject; format and shared are their table printing and common helpers. Thin: arguments ->
settings -> app -> one call. `headrace.cli:main` is the console script; `python -m headrace.cli` runs it too."""

from headrace.cli.main import main

__all__ = ["main"]
