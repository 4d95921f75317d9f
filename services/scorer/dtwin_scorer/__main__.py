"""`python -m dtwin_scorer`: the command line of `dtwin_scorer.cli`."""

from dtwin_scorer.cli import app

app(prog_name="dtwin_scorer")
