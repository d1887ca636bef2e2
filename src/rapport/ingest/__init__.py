"""Customer data integration: turning imported spreadsheet cells into clean, validated values."""

from rapport.ingest.normalise import Address, NormaliseError, address, date, email, gender, name, phone

__all__ = ["Address", "NormaliseError", "address", "date", "email", "gender", "name", "phone"]
