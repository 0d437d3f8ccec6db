"""python -m worker.simulator [flags]: the simulator on its own, without the snaprelabel CLI."""

import argparse
import sys

from .cli import add_arguments, run


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m worker.simulator", description="EVS-compatible snapshot API simulator"
    )
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
