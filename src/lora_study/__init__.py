"""lora-study: the logic behind the Snakemake workflow (importable, typed, tested)."""

__version__ = "0.1.0"
