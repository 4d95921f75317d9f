"""`python -m dtwin_simulator`: the typer CLI of `dtwin_simulator.main`."""

from dtwin_simulator.main import app

# Guarded so that importing the module (multiprocessing, tooling) never runs the CLI.
if __name__ == "__main__":
    app()
