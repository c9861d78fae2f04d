"""The routers modules/childcare adds to the application (main.py includes every one, in order)."""

from __future__ import annotations

from fastapi import APIRouter

from kiban.modules.childcare import api, web

ROUTERS: list[APIRouter] = [web.router, *api.ROUTERS]
