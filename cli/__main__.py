"""`python -m cli ...`: the `chatapi` console script, where the source is not pip-installed."""

import sys

from cli.main import main

sys.exit(main())
