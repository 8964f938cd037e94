"""Models of the monitors app."""
