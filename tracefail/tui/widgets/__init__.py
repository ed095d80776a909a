"""The trace screen's parts, one widget per job (as posting and harlequin group theirs)."""
