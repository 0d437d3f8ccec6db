"""The commands of `snaprelabel`; each module registers its own sub-parser."""

from . import auth, demo, run, simulate, undo, validate

COMMANDS = (run, validate, undo, auth, demo, simulate)
