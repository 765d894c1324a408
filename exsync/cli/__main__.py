"""`python -m exsync.cli`."""

import sys

from exsync.cli import main

# guarded: importing every module (the image test walks the package) must not run the command
if __name__ == "__main__":
    sys.exit(main())
