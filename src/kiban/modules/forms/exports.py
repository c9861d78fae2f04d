"""A form's submissions as a background export (core/exports): any number, in the order they
arrived, with the status chosen on the inbox page."""

from __future__ import annotations

from kiban.core.exports.service import Exporter, register_exporter
from kiban.core.identity.permissions import Permission
from kiban.modules.forms import service


async def _form(session, params):
    return await service.get_form(session, params["form_id"])


def _status(params):
    return service.parse_status(params.get("status"))


async def _header(session, tenant, params: dict):
    return service.export_header(await service.export_columns(session, await _form(session, params)))


async def _rows(session, tenant, params: dict, after, limit: int):
    form = await _form(session, params)
    found = await service.export_rows(session, form, await service.export_columns(session, form),
                                      status=_status(params), after=tuple(after) if after else None, limit=limit)
    last = found[-1][0] if len(found) == limit else None
    return [row for _, row in found], ([last.submitted_at.isoformat(), last.id] if last is not None else None)


async def _count(session, tenant, params: dict) -> int:
    return await service.export_count(session, await _form(session, params), _status(params))


SUBMISSIONS = register_exporter(Exporter("forms.submissions", "電子申請の申請一覧", Permission.forms_submission_read,
                                         _header, _rows, count=_count, filename="submissions"))
