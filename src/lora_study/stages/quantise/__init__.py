"""Stages `measure_latency` and `generate_quant_predictions` (rules/quantise.smk): speed, memory and quality per precision."""
