"""The foundations every stage stands on, torch-free: the configuration and its checks
(`config`), the grid of variants and their names (`grid`), the datasets (`datasets`) and their
subsets (`data`), result files and their provenance (`io`, `results`,
`provenance`, `checksums`), the machine's load while a job ran (`conditions`) and logging
(`logs`). Nothing here imports a stage, the model side or torch."""
