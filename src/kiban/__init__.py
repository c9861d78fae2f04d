"""Kiban: 国・地方デジタル共通基盤 — one deployment, every local government a tenant."""

__version__ = "0.1.0"
