"""Pure code shared by the operator and the services: units, schema SQL, telemetry types."""
