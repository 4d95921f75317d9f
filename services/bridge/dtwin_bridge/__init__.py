"""The MQTT -> database ingestion bridge of one Site."""
