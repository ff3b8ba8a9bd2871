"""`python -m sessionrec` runs the command line (also under torchrun)."""

from sessionrec.cli import main

main()
