"""Stages `validate_variant` and `select_learning_rate` (rules/selection.smk): each candidate rate's validation loss, and the rate each method keeps."""
