"""`python -m sessionrec` runs the command line (also under torchrun)."""

from sessionrec.launch import main

main()
