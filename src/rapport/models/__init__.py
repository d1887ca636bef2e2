"""All ORM models, imported together so Alembic and the mappers see the whole schema."""

from rapport.models.activities import Interaction, Task
from rapport.models.base import Base
from rapport.models.commerce import Order, OrderLine, Product
from rapport.models.customers import (
    ContactPoint,
    Customer,
    CustomerSearchTerm,
    CustomerTag,
    CustomField,
    Organisation,
)
from rapport.models.segments import Segment
from rapport.models.system import AuditEvent, IdempotencyRecord
from rapport.models.users import ApiKey, AuthToken, Team, User

__all__ = [
    "ApiKey",
    "AuditEvent",
    "AuthToken",
    "Base",
    "ContactPoint",
    "CustomField",
    "Customer",
    "CustomerSearchTerm",
    "CustomerTag",
    "IdempotencyRecord",
    "Interaction",
    "Order",
    "OrderLine",
    "Organisation",
    "Product",
    "Segment",
    "Task",
    "Team",
    "User",
]
