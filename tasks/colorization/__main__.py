"""``python -m tasks.colorization``: the ``adacolor`` program (also under torchrun's ``-m``)."""

import sys

from tasks.colorization.cli import main

if __name__ == "__main__":
    sys.exit(main())
