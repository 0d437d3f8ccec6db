"""The commands of `snaprelabel`; each module registers its own sub-parser."""

from . import auth, demo, run, simulate, validate

COMMANDS = (run, validate, auth, demo, simulate)
