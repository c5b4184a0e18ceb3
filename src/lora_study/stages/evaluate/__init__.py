"""Stages `generate_predictions`, `score_predictions` and `reuse_base_predictions` (rules/evaluate.smk); the evaluation itself is `model.evaluate`, shared with other stages."""
