"""The commands of `snaprelabel`; each module registers its own sub-parser."""

from . import consume, demo, enqueue, queue, run, simulate, validate

COMMANDS = (run, validate, demo, simulate, enqueue, consume, queue)
