"""The main file ``raksha submit`` gives spark-submit: runs ``raksha COMMAND ARGS`` in the driver.

spark-submit needs a Python file as its primary resource; this one only calls the command line,
so a submitted command behaves exactly like the same command run locally.
"""

import sys

from raksha.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
