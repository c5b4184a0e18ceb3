"""One package per stage of the workflow, named as its rules file in `rules/`: the job a rule
runs and its torch-free summary. A stage imports `core`, `stats`, `model`, `tasks` and its own
modules, never another stage (a test checks this)."""
