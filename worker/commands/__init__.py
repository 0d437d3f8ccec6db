"""The commands of `snaprelabel`; each module registers its own sub-parser."""

from . import auth, demo, plan, run, simulate, validate

COMMANDS = (run, validate, plan, auth, demo, simulate)
