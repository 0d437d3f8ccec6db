"""The commands of `snaprelabel`; each module registers its own sub-parser."""

from . import auth, consume, demo, enqueue, plan, queue, run, simulate, summary, undo, validate

COMMANDS = (run, validate, plan, undo, summary, auth, demo, simulate, enqueue, consume, queue)
