"""``python -m jpegsr ...``: the same command line as ``jpegsr ...``."""

import sys

from jpegsr.cli import main

sys.exit(main())
