"""The argument parser of every command: argparse, but a bad flag is one clear line (and exit 2),
not a usage dump."""

from __future__ import annotations

import argparse
from typing import NoReturn

from .. import exitcodes


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(exitcodes.USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
