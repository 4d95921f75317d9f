"""A small MQTT v5 client for the bridge's hot path: see `dtwin_bridge.mqtt` for why it is not paho."""
