import sys

from pipeline.tracking.cli import main

sys.exit(main())
