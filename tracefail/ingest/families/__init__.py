"""One small module per trace family: its name, how to recognise its files, and only the fixes
the generic structural reader (`ingest/shapes`) cannot make by shape. A family the generic
reader already maps right is a name and a detection rule; `ingest -v` then names the family."""
