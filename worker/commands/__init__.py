"""The commands of `snaprelabel`; each module registers its own sub-parser."""

from . import demo, run, simulate, validate

COMMANDS = (run, validate, demo, simulate)
