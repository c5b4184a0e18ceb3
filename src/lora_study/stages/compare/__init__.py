"""Stage `compare_variants` (rules/compare.smk): paired comparisons with intervals, Holm and detectable effects."""
