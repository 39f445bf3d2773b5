"""`python -m sandbox`: the offline demo (see sandbox.demo)."""

import sys

from sandbox.demo import main

sys.exit(main())
