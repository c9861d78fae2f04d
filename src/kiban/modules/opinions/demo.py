"""Demo data of modules/opinions for `kiban demo`: デジタル庁 consults every local government on
「国・地方デジタル共通基盤の整備・運用に関する基本方針案」. The sections follow the headings of
the policy's outline (seed 003: 基本的な考え方, 取組の方向性 with its three parts, 今後の推進体制);
their text is a short summary written for the demo, not the real draft, and says so. A few
invented comments (架空) from bodies far from the tests' tenants, classified and answered, and the
table published, so that /opinions has something to show. Idempotent: a consultation with the
same title at デジタル庁 is left as it is."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.registry import service as registry_service
from kiban.core.tenancy.context import as_tenant
from kiban.kit.db import utcnow
from kiban.modules.opinions import service
from kiban.modules.opinions.models import Consultation

DIGITAL_AGENCY = "000019"
ACTOR = "デモデータ作成（架空）"
TITLE = "国・地方デジタル共通基盤の整備・運用に関する基本方針案"
NOTE = "（デモ用の要約です。実際の基本方針案の本文ではありません）"
DESCRIPTION = ("デモ用の架空の意見照会です。節の見出しは基本方針の概要の構成に合わせ、本文はデモ用に要約したもの、"
               "意見と回答はすべて架空です。")
SECTIONS = f"""# 1 基本的な考え方
人口減少による担い手不足に対応するため、デジタル技術で公共サービスの効率化と利便性の向上を図る。システムは共通化し、政策は地方公共団体の創意工夫に委ねる。{NOTE}
# 2(1) 共通化すべき業務・システムの基準
住民のニーズに即しているか、効果の見込みがあるか、実現可能性があるかの三つの基準で共通化の対象を選ぶ。共通化は地方の主体的な判断による。{NOTE}
# 2(2) 費用負担の基本的考え方
共通SaaS、デジタル公共インフラ、物理・仮想基盤の区分ごとに、国と地方の費用負担の考え方を示す。{NOTE}
# 2(3) デジタル人材の確保
共通SaaS等の整備のための国の体制の強化と、都道府県を中心とした市町村と連携した人材確保の体制づくりを進める。{NOTE}
# 3 今後の推進体制
国・地方の連絡協議の枠組みと、各府省庁のDXを進める枠組みを設ける。{NOTE}
"""
# (body, section key, kind, text, proposal, category, answer group)
COMMENTS = (
    ("041009", "s2", "opinion", "共通化の対象を選ぶときは、小規模な町村の事務の実情も聞き取ってほしい。（架空の意見）",
     "「地方の主体的な判断による」の後に「小規模団体の意見を丁寧に聴く」旨を加える。（架空）", "revised", "a"),
    ("062014", "s2", "opinion", "対象候補の選定の過程を公開してほしい。（架空の意見）", "", "revised", "a"),
    ("040002", "s3", "question", "利用料の算定方法は、団体の人口規模をどう考慮するのか。（架空の質問）", "", "answer", "b"),
    ("401307", "s4", "opinion", "都道府県の人材プールに市町村が参加するときの費用の扱いを示してほしい。（架空の意見）", "",
     "reference", "c"),
)
ANSWERS = {
    "a": "御意見を踏まえ、対象候補の選定にあたって小規模団体を含む地方公共団体の意見を丁寧に聴く旨を追記します。（架空の回答）",
    "b": "人口按分に重み係数を掛ける方法を基本とし、詳細は連絡協議会で示します。（架空の回答）",
    "c": "今後の検討の参考とさせていただきます。（架空の回答）",
}


async def load_demo(session: AsyncSession) -> int:
    """Adds the demo consultation with its comments and answers if missing; returns 1 or 0."""
    agency = await registry_service.tenant_for(session, DIGITAL_AGENCY)
    async with as_tenant(session, agency):
        if await session.scalar(select(Consultation.id).where(Consultation.title == TITLE)):
            return 0
        consultation = await service.create_consultation(session, agency, service.Draft(
            title=TITLE, description=DESCRIPTION, sections=SECTIONS, opens_on="2024-05-21", closes_on="2024-06-07",
            target_kind="all"), actor=ACTOR)
        # The period is in the past: announce it as it was then (service.announce refuses a closed period).
        consultation.announced_at = utcnow()
        consultation.opens_on, consultation.closes_on = date(2000, 1, 1), date(2100, 12, 31)
        await session.flush()
    for code, key, kind, body, proposal, _, _ in COMMENTS:
        tenant = await registry_service.tenant_for(session, code)
        async with as_tenant(session, tenant):
            await service.add_comment(session, tenant, consultation, section_key=key, kind=kind, body=body,
                                      proposal=proposal, actor=ACTOR)
    async with as_tenant(session, agency):
        consultation.opens_on, consultation.closes_on = date(2024, 5, 21), date(2024, 6, 7)
        table = await service.secretariat_table(session, consultation)
        answer_ids: dict[str, str] = {}
        for code, key, _, body, _, category, group in COMMENTS:
            row = next(r for r in table.rows if r.comment.lg_code == code and r.comment.body == body)
            _, answer = await service.classify(session, consultation, refs=[row.ref], category=category,
                                               answer_text="" if group in answer_ids else ANSWERS[group],
                                               answer_id=answer_ids.get(group, ""), actor=ACTOR)
            answer_ids[group] = answer.id
        await service.publish(session, consultation, publish_names=False, expected_version=None)
    return 1
