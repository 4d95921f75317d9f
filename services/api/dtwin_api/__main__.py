"""`python -m dtwin_api`: the command line of `dtwin_api.cli`."""

from dtwin_api.cli import app

app(prog_name="dtwin_api")
