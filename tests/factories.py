"""One row factory per tenant-owned model, used by the isolation tests.

Adding a tenant-owned model without a factory here fails
``test_every_tenant_owned_model_has_a_factory``: isolation is tested for every table.
"""

from __future__ import annotations

from collections.abc import Callable

from kiban.core.tenancy.settings_models import TenantSetting, TenantSettingChange
from kiban.kit.db import utcnow

SAPPORO = "011002"
HAKODATE = "012025"
HOKKAIDO = "010006"
ICHINOMIYA = "232033"
AICHI = "230006"


def _tenant_setting(lg_code: str, marker: str) -> TenantSetting:
    return TenantSetting(lg_code=lg_code, key=f"test.{marker}", value=marker, version=1,
                         updated_by="test", updated_at=utcnow())


def _tenant_setting_change(lg_code: str, marker: str) -> TenantSettingChange:
    return TenantSettingChange(lg_code=lg_code, key=f"test.{marker}", version=1, old_value=None,
                               new_value=marker, changed_by="test", reason="", changed_at=utcnow())


FACTORIES: dict[type, Callable[[str, str], object]] = {
    TenantSetting: _tenant_setting,
    TenantSettingChange: _tenant_setting_change,
}
