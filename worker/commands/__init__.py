"""The commands of `snaprelabel`; each module registers its own sub-parser."""

from . import demo, run, simulate, undo, validate

COMMANDS = (run, validate, undo, demo, simulate)
