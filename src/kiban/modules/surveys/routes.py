"""The routers modules/surveys adds to the application (main.py includes every one, in order)."""

from __future__ import annotations

from fastapi import APIRouter

from kiban.modules.surveys import api, reminders, web  # noqa: F401 - reminders registers its job kind

ROUTERS: list[APIRouter] = [web.public_router, web.router, api.public, api.tenant]
