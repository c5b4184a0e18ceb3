"""Stages `measure_weight_drift` and `mitigate_intruders` (rules/weights.smk): weight-space drift, intruder dimensions and their mitigation."""
