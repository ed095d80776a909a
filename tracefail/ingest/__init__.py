"""Source formats -> model.Trace: one adapter per format, detection in `registry`, streaming readers."""
