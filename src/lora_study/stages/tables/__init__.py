"""Stage `build_tables` (rules/tables.smk): tidy CSV tables of a study, and `compare_runs` for two studies."""
