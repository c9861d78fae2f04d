"""Resolving the tenant once per request, from the URL."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.registry import service as registry_service
from kiban.core.tenancy.context import Tenant, bind_tenant
from kiban.kit.db import get_session

DbSession = Annotated[AsyncSession, Depends(get_session)]


async def tenant_from_path(lg_code: str, session: DbSession) -> Tenant:
    """The tenant named by ``/t/{lg_code}/...``, bound to this request's session.

    422 for a malformed code (saying what is wrong), 404 for a code that is not a tenant.
    Membership (may this person act for it?) is checked by the identity layer on top.
    """
    tenant = await registry_service.tenant_for(session, lg_code)
    await bind_tenant(session, tenant)
    return tenant


CurrentTenant = Annotated[Tenant, Depends(tenant_from_path)]
