"""``python -m adacolor``: the ``adacolor`` program (also under torchrun's ``-m``)."""

import sys

from adacolor.cli import main

if __name__ == "__main__":
    sys.exit(main())
