"""Stage `prepare_model` (rules/model.smk): the offline GGUF or a hub folder made into a loadable model folder."""
