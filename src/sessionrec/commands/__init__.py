"""The `sessionrec` commands, one module each (a group such as `datasets` is one module).

A module defines its commands as plain typed functions; `sessionrec.cli` adds them all to the
app, by name, in one table. Options that several commands share are defined once in
`options.py`. Import heavy dependencies inside the command body, so that `sessionrec --help`
stays fast.
"""
