"""`python -m arrowtok ...`: the same command line as the `arrowtok` script."""
import sys

from .cli import main

sys.exit(main())
