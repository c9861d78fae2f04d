"""API for systems holding an API key."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from kiban.core.identity.dependencies import ApiClient

router = APIRouter(prefix="/api/v1/t/{lg_code}", tags=["API キー"])


class WhoAmI(BaseModel):
    lg_code: str
    organisation: str
    key_name: str
    kind: str
    permissions: list[str]


@router.get("/whoami", summary="この API キーの確認（テスト用キーでも使えます）", response_model=WhoAmI)
async def whoami(client: ApiClient) -> WhoAmI:
    key = client.api_key
    return WhoAmI(lg_code=client.tenant.lg_code, organisation=client.tenant.name, key_name=key.name,
                  kind=key.kind, permissions=list(key.permissions))
