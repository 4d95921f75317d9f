"""The only operator code that talks to PostgreSQL/TimescaleDB."""
