"""`python -m export.codegen ...`: the same as `python -m export codegen ...`."""

import sys

from export.codegen.cli import main

sys.exit(main())
