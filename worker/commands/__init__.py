"""The commands of `snaprelabel`; each module registers its own sub-parser."""

from . import auth, consume, demo, enqueue, plan, queue, run, simulate, undo, validate

COMMANDS = (run, validate, plan, undo, auth, demo, simulate, enqueue, consume, queue)
