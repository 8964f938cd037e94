"""Models of the operations app."""
