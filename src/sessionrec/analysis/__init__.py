"""Analyses of trained runs; their commands (`sessionrec analyze ...`) are in
sessionrec/commands/analyze.py."""
