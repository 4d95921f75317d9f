"""`python -m dtwin_trainer`: the trainer's CLI (see `cli.py`)."""

import sys

from dtwin_trainer.cli import run

sys.exit(run())
