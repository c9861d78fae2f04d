"""Demo data for ``kiban demo``: 豊田市 (232114) publishes its 粗大ごみ収集の申込 form and shares
it as a template, so that 一宮市 (232033) can copy it in one step at
``/t/232033/forms/templates`` (the story of issue #12). The form is invented for the demo."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.registry import service as registry
from kiban.core.tenancy.context import as_tenant
from kiban.modules.forms import service
from kiban.modules.forms.models import Form

TOYOTA = "232114"
SLUG = "sodai-gomi"
DEMO_ACTOR = "デモデータ作成（架空）"

SODAI_GOMI_FIELDS: list[dict] = [
    {"type": "text", "label": "お名前", "required": True, "hint": "申込者の氏名"},
    {"type": "text", "label": "フリガナ", "required": True, "pattern": "katakana"},
    {"type": "tel", "label": "電話番号", "required": True, "hint": "収集日の確認でご連絡することがあります"},
    {"type": "email", "label": "メールアドレス", "required": False, "hint": "受付番号をお送りします"},
    {"type": "address", "label": "収集場所の住所", "required": True},
    {"type": "choice", "label": "品目", "required": True,
     "options": ["たんす・棚", "ふとん・カーペット", "自転車", "いす・テーブル", "その他"]},
    {"type": "text", "label": "品目（その他の内容）", "required": True, "max_length": 100,
     "show_if": {"field": "q6", "equals": "その他"}},
    {"type": "number", "label": "点数", "required": True, "min": 1, "max": 10, "hint": "1回の申込は10点まで"},
    {"type": "date", "label": "収集の希望日", "required": True, "hint": "申込日から7日以降の平日"},
    {"type": "textarea", "label": "連絡事項", "required": False, "max_length": 400},
]


async def load_demo(session: AsyncSession) -> int:
    """Idempotent: 0 when 豊田市's demo form exists, else 1 (the form, published and shared)."""
    toyota = await registry.tenant_for(session, TOYOTA)
    async with as_tenant(session, toyota):
        if await session.scalar(select(Form.id).where(Form.slug == SLUG)):
            return 0
        form = await service.create_form(session, service.FormSettings(
            title="粗大ごみ収集の申込", slug=SLUG,
            description="粗大ごみの戸別収集を申し込みます（デモ用の架空のフォームです）。\n"
                        "申込後、収集日と手数料をご連絡します。",
            contact="豊田市 環境部 ごみ減量推進課（デモ・架空）",
            shared_summary="粗大ごみの戸別収集の申込。品目「その他」のときだけ内容を尋ねます。"), actor=DEMO_ACTOR)
        await service.replace_fields(session, form, SODAI_GOMI_FIELDS, actor=DEMO_ACTOR, expected_version=None)
        await service.publish(session, form, actor=DEMO_ACTOR, expected_version=None)
        await service.set_shared(session, form, True, actor=DEMO_ACTOR, expected_version=None)
    return 1
