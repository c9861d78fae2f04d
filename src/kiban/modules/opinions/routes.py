"""The routers modules/opinions adds to the application (main.py includes every one, in order)."""

from __future__ import annotations

from fastapi import APIRouter

from kiban.modules.opinions import api, web

ROUTERS: list[APIRouter] = [api.public, api.tenant, web.router]
