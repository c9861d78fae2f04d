"""The routers modules/governance adds to the application (main.py includes every one, in order)."""

from __future__ import annotations

from fastapi import APIRouter

ROUTERS: list[APIRouter] = []
