"""Output formats: the registry and one module per format family."""
