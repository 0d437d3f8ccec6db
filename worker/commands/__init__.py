"""The commands of `snaprelabel`; each module registers its own sub-parser."""

from . import auth, consume, demo, enqueue, plan, queue, run, simulate, validate

COMMANDS = (run, validate, plan, auth, demo, simulate, enqueue, consume, queue)
