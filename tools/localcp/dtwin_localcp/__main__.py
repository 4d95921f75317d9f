"""`python -m dtwin_localcp` runs the command line (see `dtwin_localcp.cli`)."""

from dtwin_localcp.cli import app

app(prog_name="dtwin-localcp")
