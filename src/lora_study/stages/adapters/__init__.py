"""Stages `train_adapter`, `train_full` and `count_adapter_parameters` (rules/adapters.smk): one training job per variant, and LoRA's parameter counts."""
