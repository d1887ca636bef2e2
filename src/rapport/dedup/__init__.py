"""Duplicate detection: probabilistic record linkage (Splink) over customers, a review queue of
clusters, and matching of import batches against existing customers."""
