"""dtwin ML: the features, models and event-level metrics shared by the trainer, the bentos and the CLI."""
