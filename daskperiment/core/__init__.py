"""daskperiment 0.5's ``daskperiment.core`` package, kept so its documented import paths work."""
