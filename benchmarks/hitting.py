"""`duallinear hitting` as a script: `python benchmarks/hitting.py [options]` (see `--help`).

A thin wrapper over :mod:`duallinear.cli`; the measuring code lives in
:mod:`duallinear.experiments` so that the command and this script cannot drift apart.
"""

import sys

from duallinear.cli import main

if __name__ == "__main__":
    sys.exit(main(["hitting", *sys.argv[1:]]))
