"""`python -m dtwin_bridge`: the command line of `dtwin_bridge.main`."""

from dtwin_bridge.main import app

app(prog_name="dtwin_bridge")
