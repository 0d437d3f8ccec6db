"""One module per scenario of issue 6; each `run(quick) -> Section` measures and describes."""
