import sys

from linkprobe.cli import main

sys.exit(main())
