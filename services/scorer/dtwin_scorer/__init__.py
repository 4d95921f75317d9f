"""dtwin's online scoring worker: windows of recent telemetry to the model servers, predictions and alerts back."""
