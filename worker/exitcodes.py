"""Exit codes: documented in the README and stable, so scripts can trust them."""

OK = 0  # every row applied (or unchanged; for a dry run: every row valid)
PROBLEMS = 1  # the job ran to its end, and some rows were rejected or failed
USAGE = 2  # bad flag, setting, credentials or input file: nothing was sent
STOPPED = 3  # reserved: the job stopped itself (a safety threshold)
FATAL = 4  # the job could not go on (the report could not be written)
SIGINT = 130  # interrupted by SIGINT (Ctrl-C): unfinished rows recorded as interrupted
SIGTERM = 143  # interrupted by SIGTERM (container stop): unfinished rows recorded as interrupted
