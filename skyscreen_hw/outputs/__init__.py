"""LED outputs: the Output interface and a factory that builds them from the configuration."""
