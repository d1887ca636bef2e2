"""The ``rapport`` command line: serve, migrate, load demo data, manage users, verify the audit chain."""
