"""Permissions are named ``<module>.<resource>.<action>``; roles are sets of them.

Every route declares the permission it needs (``require``) or that it is public (``PUBLIC``);
``tests/core/test_route_permissions.py`` walks the application and fails on any route that
does neither.
"""

from __future__ import annotations

import enum


class Permission(enum.StrEnum):
    tenancy_setting_read = "tenancy.setting.read"
    tenancy_setting_update = "tenancy.setting.update"
    audit_entry_read = "audit.entry.read"
    identity_membership_read = "identity.membership.read"
    identity_membership_manage = "identity.membership.manage"
    identity_apikey_manage = "identity.apikey.manage"
    tenancy_grant_manage = "tenancy.grant.manage"
    catalog_adoption_read = "catalog.adoption.read"
    catalog_adoption_write = "catalog.adoption.write"
    # Editing the national catalog: only acts at the platform operator (デジタル庁, 000019).
    catalog_service_manage = "catalog.service.manage"
    costs_schedule_manage = "costs.schedule.manage"
    costs_statement_read = "costs.statement.read"
    disaster_record_read = "disaster.record.read"
    disaster_record_write = "disaster.record.write"
    # Opening a disaster: acts only at a prefecture or 内閣府.
    disaster_disaster_manage = "disaster.disaster.manage"


class Role(enum.StrEnum):
    admin = "admin"
    staff = "staff"
    viewer = "viewer"

    @property
    def label(self) -> str:
        return ROLE_LABELS[self]


ROLE_LABELS = {Role.admin: "団体管理者", Role.staff: "職員", Role.viewer: "閲覧者"}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.viewer: frozenset({Permission.tenancy_setting_read, Permission.catalog_adoption_read,
                            Permission.costs_statement_read, Permission.disaster_record_read}),
    Role.staff: frozenset({Permission.tenancy_setting_read, Permission.catalog_adoption_read,
                           Permission.catalog_adoption_write, Permission.costs_statement_read,
                           Permission.disaster_record_read, Permission.disaster_record_write,
                           Permission.disaster_disaster_manage}),
    Role.admin: frozenset(Permission),
}


# What an API key may be given: reading and writing tenant data, never managing people or keys.
API_KEY_GRANTABLE = (Permission.tenancy_setting_read, Permission.tenancy_setting_update, Permission.audit_entry_read,
                     Permission.catalog_adoption_read, Permission.catalog_adoption_write,
                     Permission.costs_statement_read)


def permissions_of(role: str) -> frozenset[Permission]:
    try:
        return ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return frozenset()
