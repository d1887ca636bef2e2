"""All ORM models, imported together so Alembic and the mappers see the whole schema."""

from rapport.models.activities import Interaction, Task
from rapport.models.analytics import CustomerScore
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
from rapport.models.dashboard import DashboardCustomerCount, DashboardOrderDay, DashboardTaskDay
from rapport.models.dedup import DedupCluster, DedupPair, DedupRun
from rapport.models.ingest import CustomerExternalId, ImportChange, ImportJob, ImportRejection
from rapport.models.merge import CustomerAlias, CustomerMerge
from rapport.models.privacy import (
    ConsentEvent,
    ConsentState,
    DataSubjectRequest,
    PortalChallenge,
    PortalSession,
    PrivacyComplaint,
    ProcessingRestriction,
    ProvisionLog,
    SharingAgreement,
    SharingPartner,
)
from rapport.models.security import (
    OidcIdentity,
    RecoveryCode,
    RoleMfaRequirement,
    UserTotp,
    WebhookDelivery,
    WebhookSubscription,
)
from rapport.models.segments import Segment
from rapport.models.system import AuditEvent, EncryptionKey, IdempotencyRecord
from rapport.models.users import ApiKey, AuthToken, Team, User
from rapport.models.workspace import SavedView

__all__ = [
    "ApiKey",
    "AuditEvent",
    "AuthToken",
    "Base",
    "ConsentEvent",
    "ConsentState",
    "ContactPoint",
    "CustomField",
    "Customer",
    "CustomerAlias",
    "CustomerExternalId",
    "CustomerMerge",
    "CustomerScore",
    "CustomerSearchTerm",
    "CustomerTag",
    "DashboardCustomerCount",
    "DashboardOrderDay",
    "DashboardTaskDay",
    "DataSubjectRequest",
    "DedupCluster",
    "DedupPair",
    "DedupRun",
    "EncryptionKey",
    "IdempotencyRecord",
    "ImportChange",
    "ImportJob",
    "ImportRejection",
    "Interaction",
    "OidcIdentity",
    "Order",
    "OrderLine",
    "Organisation",
    "PortalChallenge",
    "PortalSession",
    "PrivacyComplaint",
    "ProcessingRestriction",
    "Product",
    "ProvisionLog",
    "RecoveryCode",
    "RoleMfaRequirement",
    "SavedView",
    "Segment",
    "SharingAgreement",
    "SharingPartner",
    "Task",
    "Team",
    "User",
    "UserTotp",
    "WebhookDelivery",
    "WebhookSubscription",
]
