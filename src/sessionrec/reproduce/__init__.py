"""Reproduce the FOCOL and LINet papers' tables and figures (`sessionrec reproduce`, `tune`).

`experiments` declares each table/figure (models, datasets, the papers' numbers), `runner`
trains and caches one run per (model, hyper-parameters, data, settings, seed), `significance`
holds the paired test, `report` writes table.md / results.json / PNGs, `pipeline` ties them
together and `tune` is the validation-only grid search. See docs/reproduce.md.
"""
