"""accord.graphs."""
