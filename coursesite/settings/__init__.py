"""Settings packages: `base` reads the environment; dev, test and prod override it."""
