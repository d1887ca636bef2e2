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
from rapport.models.security import (
    OidcIdentity,
    RecoveryCode,
    RoleMfaRequirement,
    UserTotp,
    WebhookDelivery,
    WebhookSubscription,
)
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
    "OidcIdentity",
    "Order",
    "OrderLine",
    "Organisation",
    "Product",
    "RecoveryCode",
    "RoleMfaRequirement",
    "Task",
    "Team",
    "User",
    "UserTotp",
    "WebhookDelivery",
    "WebhookSubscription",
]
