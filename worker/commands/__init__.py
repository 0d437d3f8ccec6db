"""The commands of `snaprelabel`; each module registers its own sub-parser."""

from . import auth, consume, demo, enqueue, plan, queue, retry, run, simulate, summary, undo, validate

COMMANDS = (run, validate, plan, undo, retry, summary, auth, demo, simulate, enqueue, consume, queue)
