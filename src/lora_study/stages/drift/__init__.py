"""Stages `make_drift_prompts`, `measure_base_features`, `measure_drift` and `summarise_drift` (rules/drift.smk): representational drift (CKA) and forgetting."""
