"""`python -m dtwin_cli ...` runs the `dtwin` command."""

from dtwin_cli.main import app

app(prog_name="dtwin")
