"""Personal-data governance (PIPL, GDPR): classification, the record of processing, and later DSR."""
