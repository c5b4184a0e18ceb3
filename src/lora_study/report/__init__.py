"""report.html: one self-contained page built only from result files.

Nothing in the page is typed in by hand: every number is read from a JSON that a rule
wrote, and every string from the data or the model is HTML-escaped. The page has no
external resources, so it opens offline. One module per stage builds that stage's
sections from the named inputs of rule build_report it declares (`stages.STAGES`); no
torch here: the report environment (envs/report.yaml) has none.
"""
