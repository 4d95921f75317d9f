"""dtwin trainer: builds features from history, trains the ML tasks, evaluates them on a time split."""
