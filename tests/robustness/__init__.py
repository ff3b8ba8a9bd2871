"""Robustness and safety tests (a package, so its conftest and modules have their own names)."""
