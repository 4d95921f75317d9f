"""dtwin: the command-line tool for engineers' own data (history import now; model and edge commands later)."""
