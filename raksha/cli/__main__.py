"""``python -m raksha.cli``: the ``raksha`` command."""

import sys

from raksha.cli import main

sys.exit(main())
