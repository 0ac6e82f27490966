"""`python -m headrace.cli`: the same command as the `headrace` console script."""

import sys

from headrace.cli.main import main

sys.exit(main())
