"""The routers modules/indicators adds to the application (main.py includes every one, in order)."""

from __future__ import annotations

from fastapi import APIRouter

from kiban.modules.indicators import api, web

ROUTERS: list[APIRouter] = [api.public, web.router]
