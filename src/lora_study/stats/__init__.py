"""Statistics, torch-free: intervals, paired tests and Holm (`inference`), the t and normal
distributions (`distributions`), minimum detectable effects (`power`), the drift bootstrap and
its CKA from Gram matrices (`drift`), linear CKA (`cka`), and whether a variant learned at all
(`learning`). Every formula has a test against known values or a trusted library."""
