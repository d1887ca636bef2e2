"""Customer list exports: CSV, XLSX, JSON Lines and vCard, streamed through the data-access layer."""
