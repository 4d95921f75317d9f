"""The dtwin operator: reconciles Site, Asset, SensorBinding and ModelDeployment resources."""
