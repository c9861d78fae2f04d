"""Every model, imported so that ``metadata`` is complete (Alembic and the isolation tests)."""

from kiban.core.audit.models import AuditChainHead, AuditEntry, AuditPending  # noqa: F401
from kiban.core.identity.models import (  # noqa: F401
    ApiKey,
    BusinessIdentity,
    Invitation,
    OidcLogin,
    JpkiChallenge,
    Membership,
    Principal,
    ResidentIdentity,
    StaffCredential,
    WebSession,
)
from kiban.core.exports.models import ExportFile, ExportPart  # noqa: F401
from kiban.core.jobs.models import Job  # noqa: F401
from kiban.core.registry.models import Organization, RegistryRevision  # noqa: F401
from kiban.core.tenancy.grants_models import AccessGrant  # noqa: F401
from kiban.core.tenancy.settings_models import TenantSetting, TenantSettingChange  # noqa: F401
from kiban.modules.catalog.models import (  # noqa: F401
    Adoption,
    CatalogService,
    CatalogVendor,
    Consortium,
    ConsortiumMember,
    ConsortiumSystem,
    ConsortiumSystemUser,
)
from kiban.modules.costs.models import FeeSchedule, FeeStatement, FeeUsage  # noqa: F401
from kiban.modules.disaster.models import (  # noqa: F401
    Disaster,
    DisasterArea,
    LinkageBatch,
    MatchDecision,
    RosterImport,
    Shelter,
    VictimRecord,
)
from kiban.core.notify.models import Notice, Notification, TemplateOverride  # noqa: F401
from kiban.core.metering.models import UsageCounter, UsageEventKey  # noqa: F401
from kiban.modules.reservations.models import Booker, Booking, Facility, Lottery, LotteryEntry, Room  # noqa: F401
from kiban.modules.forms.models import Form, FormSubmission, FormSubmissionEvent, FormUpload, FormVersion  # noqa: F401
from kiban.modules.childcare import models as _childcare_models  # noqa: F401
from kiban.modules.surveys import models as _surveys_models  # noqa: F401
from kiban.modules.governance import models as _governance_models  # noqa: F401
from kiban.modules.opinions import models as _opinions_models  # noqa: F401
from kiban.kit.db import Base
from kiban.kit.shared import SharedCounter, SharedGeneration  # noqa: F401

metadata = Base.metadata
