"""Stages `merge_adapter`, `serve_*` and `summarise_serving` (rules/serving.smk): merged against unmerged adapters under load."""
