"""The commands of `snaprelabel`; each module registers its own sub-parser."""

from . import demo, plan, run, simulate, validate

COMMANDS = (run, validate, plan, demo, simulate)
