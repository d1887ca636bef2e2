"""Customer merge: survivorship, moving related records, aliases and undo."""
