"""The `dtwin` command: one typer app with a sub-app per area: `history`, `model`, `edge`.

Each sub-app lives in its own module with its own `app`; this module only mounts them, so a new area is one
module and one `add_typer` line. Run as `dtwin` (the console script) or
`python -m dtwin_cli`.
"""

from __future__ import annotations

import typer

from dtwin_cli import edge, history, model

app = typer.Typer(
    name="dtwin",
    help="dtwin: bring your own data to a digital twin site.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(history.app, name="history")
app.add_typer(model.app, name="model")
app.add_typer(edge.app, name="edge")
