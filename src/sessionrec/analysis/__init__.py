"""Analyses of trained runs (`sessionrec analyze ...`).

Each module here that defines `register(app: typer.Typer) -> None` adds its command(s) to the
`analyze` group; the CLI discovers them, so adding an analysis touches no other file.
"""
