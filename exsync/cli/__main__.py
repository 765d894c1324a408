"""`python -m exsync.cli`."""

import sys

from exsync.cli import main

sys.exit(main())
