"""Customer analytics on plain arrays: lifetime value models (no database access here)."""
