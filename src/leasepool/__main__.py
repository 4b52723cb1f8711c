"""``python -m leasepool``."""

import sys

from leasepool._cli import main

sys.exit(main())
