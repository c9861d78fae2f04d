"""One Jinja2 environment for every module: templates are found in ``kiban/web/templates`` and
in each module's ``templates/`` folder, with the 和暦 and number filters screens need, and the
filters that name codes in Japanese (``role_label``, ``permission_label``, ``action_label``)."""

from __future__ import annotations

from pathlib import Path

from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, FileSystemLoader

from kiban.kit import wareki
from kiban.kit.settings import get_settings

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def _template_dirs() -> list[Path]:
    dirs = [PACKAGE_ROOT / "web" / "templates"]
    for sub in ("core", "modules"):
        base = PACKAGE_ROOT / sub
        if base.is_dir():
            dirs.extend(sorted(p for p in base.glob("*/templates") if p.is_dir()))
    return dirs


def _number(value: int | float | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return f"{value:,}"


def _signed_in(request) -> object | None:
    """The signed-in person for the header (``kiban.web.viewer.load_viewer``), or None: also
    when nothing was loaded, as on a page no route matched, so the header never fails a page."""
    state = getattr(request, "state", None)
    return getattr(state, "viewer", None) if state is not None else None


# Codes shown to people: any template may write {{ m.role | role_label }}, {{ p | permission_label }}
# or {{ e.action | action_label }}. kit does not import core at import time, so the tables are
# looked up on first use (core imports kit, never the other way round while loading).
def _role_label(code) -> str:
    from kiban.core.identity.permissions import role_label

    return role_label(code)


def _permission_label(code) -> str:
    from kiban.core.identity.permissions import permission_label

    return permission_label(code)


def _action_label(code) -> str:
    from kiban.core.audit.labels import action_label

    return action_label(code)


def _business_sign_in_available() -> bool:
    """Whether GビズID is configured (``KIBAN_GBIZID_ISSUER`` and ``..._CLIENT_ID``), so pages
    link to /signin/business only where it works; the same test as ``oidc.provider_config``."""
    settings = get_settings()
    return bool(settings.gbizid_issuer and settings.gbizid_client_id)


def _csrf_token(request) -> str:
    state = getattr(request, "state", None)
    return getattr(state, "csrf_token", "") if state is not None else ""


templates = Jinja2Templates(directory=str(PACKAGE_ROOT / "web" / "templates"))
templates.env.loader = ChoiceLoader([FileSystemLoader([str(d) for d in _template_dirs()])])
# Templates ship with the package and change only with an upgrade (a restart): no stat of each
# template file (and of every template it extends) on every page.
templates.env.auto_reload = False


def compile_all() -> int:
    """Compile every template now (a serving process at start-up), not on the first page that
    uses each: 50-200 ms apiece, paid by whoever opened that page first. Returns how many."""
    names = templates.env.list_templates(extensions=["html"])
    for name in names:
        templates.env.get_template(name)
    return len(names)
templates.env.filters["wareki"] = wareki.wareki
templates.env.filters["wareki_seireki"] = wareki.wareki_with_seireki
templates.env.filters["datetime_ja"] = wareki.datetime_ja
templates.env.filters["fiscal_year"] = wareki.fiscal_year_label
templates.env.filters["number"] = _number
templates.env.filters["role_label"] = _role_label
templates.env.filters["permission_label"] = _permission_label
templates.env.filters["action_label"] = _action_label
templates.env.globals["business_sign_in_available"] = _business_sign_in_available
templates.env.globals["signed_in"] = _signed_in
templates.env.globals["csrf_token"] = _csrf_token
