"""Top-level CLI commands kept outside cli.py (serve, reproduce, ...).

Each module here that defines `register(app: typer.Typer) -> None` adds its command(s) to the
`sessionrec` app; the CLI discovers them. Import heavy dependencies inside the command body.
"""
