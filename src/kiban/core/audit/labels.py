"""Japanese words for what the audit log stores as codes.

The log keeps stable codes (``identity.membership.revoked``) so that entries hash and filter
the same forever; people read 「職員の利用停止」. This is the one table from code to label,
for the administrators' log, its CSV and the resident's 「わたしの情報の利用記録」.
``tests/core/test_audit_log_for_people.py`` walks every ``audit.record(...)`` in ``src/`` and
fails on an action code missing here, so a new action cannot reach a screen as a code.

Kept free of database and web imports: any template or module may import it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

ACTION_LABELS: dict[str, str] = {
    # 監査ログ
    "audit.log.exported": "監査ログの書き出し（CSV）",
    # サインインと職員
    "identity.staff.sign_in": "職員のサインイン",
    "identity.staff.totp_enrolled": "二要素認証の登録",
    "identity.resident.sign_in": "住民のサインイン（マイナンバーカード）",
    "identity.business.sign_in": "事業者のサインイン（GビズID）",
    "identity.membership.granted": "職員の登録",
    "identity.membership.invited": "職員の招待",
    "identity.membership.invitation_accepted": "招待の受諾（パスワード設定）",
    "identity.membership.role_changed": "職員の役割の変更",
    "identity.membership.revoked": "職員の利用停止",
    "identity.membership.reinstated": "職員の利用再開",
    "identity.apikey.created": "API キーの発行",
    "identity.apikey.revoked": "API キーの失効",
    # テナント設定と閲覧許可
    "tenancy.setting.updated": "テナント設定の変更",
    "tenancy.setting.cleared": "テナント設定の解除（上位の値に戻す）",
    "tenancy.grant.created": "閲覧許可の付与",
    "tenancy.grant.revoked": "閲覧許可の取消",
    "tenancy.grant.used": "閲覧許可による閲覧",
    # 共通サービスカタログと費用
    "catalog.service.updated": "カタログ掲載サービスの更新",
    "catalog.vendor.added": "提供事業者の追加",
    "catalog.adoption.saved": "共通システムの利用状況の保存",
    "catalog.consortium.users_set": "協議会システムの利用団体の設定",
    "costs.schedule.decided": "負担金の算定の決定",
    "costs.schedule.replaced": "負担金の算定の差替",
    "costs.usage.saved": "利用量の保存",
    # 広域被災者データベース
    "disaster.opened": "災害の開設",
    "disaster.closed": "災害の終了",
    "disaster.shelter.saved": "避難所の情報の保存",
    "disaster.record.registered": "被災者の登録",
    "disaster.record.updated": "被災者の記録の更新",
    "disaster.record.read": "被災者の記録の閲覧（他団体）",
    "disaster.record.match_viewed": "名寄せ候補の閲覧",
    "disaster.record.self_registered": "本人による被災者登録",
    "disaster.match.confirmed": "名寄せ（同一人物として統合）",
    "disaster.match.rejected": "名寄せ（別人と判断）",
    "disaster.match.auto": "名寄せ（自動で統合）",
    "disaster.match.reverted": "名寄せの判断の取消",
    "disaster.match.requested": "名寄せ（同一人物としての確認の依頼）",
    "disaster.match.accepted": "名寄せの確認の受け入れ",
    "disaster.match.declined": "名寄せの確認の拒否（別人と判断）",
    "disaster.match.flagged": "名寄せの確認の注意（通常と異なる件数）",
    "disaster.match.limited": "名寄せの確認の制限（件数の上限）",
    "disaster.linkage.batch": "一括名寄せ",
    "disaster.linkage.previewed": "一括名寄せの事前確認",
    "disaster.linkage.undone": "一括名寄せの取消",
    "disaster.roster.imported": "名簿の取込",
}

UNKNOWN_ACTION = "その他の操作"
_CODE = re.compile(r"[a-z][a-z0-9_.\-]*")

ACTOR_KIND_LABELS: dict[str, str] = {
    "staff": "職員",
    "resident": "住民",
    "business": "事業者",
    "operator": "運用担当者",
    "api_client": "外部システム（API キー）",
    "system": "システム",
    "anonymous": "本人確認前の利用者",
}

OUTCOME_LABELS: dict[str, str] = {"success": "成功", "failure": "失敗"}

TARGET_TYPE_LABELS: dict[str, str] = {
    "principal": "職員",
    "api_key": "API キー",
    "access_grant": "閲覧許可",
    "tenant_setting": "テナント設定",
    "route": "閲覧した画面",
    "catalog_service": "カタログ掲載サービス",
    "catalog_vendor": "提供事業者",
    "catalog_adoption": "共通システムの利用状況",
    "consortium_system": "協議会のシステム",
    "fee_schedule": "負担金の算定",
    "disaster": "災害",
    "shelter": "避難所",
    "victim_record": "被災者の記録",
    "match_decision": "名寄せの判断",
    "linkage_batch": "一括名寄せ",
    "roster_import": "名簿の取込",
}

# Detail keys worth showing, in this order, and the words for their coded values. Keys not
# listed stay in the stored entry (and its hash) but are not shown: they would show as codes.
DETAIL_KEYS: dict[str, str] = {
    "reason": "理由",
    "step": "段階",
    "lock_minutes": "この失敗によるロック（分）",
    "wait_seconds": "次に試せるまでの待ち時間（秒）",
    "role": "役割",
    "label": "項目",
    "value": "値",
    "name": "名称",
    "username": "ユーザー名",
    "permission": "許可した範囲",
    "purpose": "利用目的",
    "entries": "件数",
    "added": "追加件数",
    "rows": "行数",
    "reader_name": "閲覧した団体",
    "members": "構成団体数",
    "users": "利用団体数",
    "amount": "金額",
    "method": "算定方法",
    "occupancy": "避難者数",
    "fiscal_year": "年度",
    "records": "記録数",
    "pairs": "候補の組数",
    "linked": "統合した組",
    "kept": "別人と判断した組",
    "undone": "取り消した組",
}

DETAIL_VALUE_LABELS: dict[str, dict[str, str]] = {
    "step": {"password": "パスワード", "totp": "確認コード（二要素認証）"},
    "reason": {
        "wrong_password": "パスワードの誤り",
        "unknown_user": "登録のないユーザー名",
        "locked": "連続失敗によるロック中",
        "disabled": "利用停止中のアカウント",
        "wrong_code": "確認コードの誤り",
        "corporate_number_invalid": "法人番号を確認できない",
    },
}


def action_label(code: str | None) -> str:
    """「職員の利用停止」 for ``identity.membership.revoked``; never the code itself."""
    return ACTION_LABELS.get(code or "", UNKNOWN_ACTION)


def actor_kind_label(kind: str | None) -> str:
    return ACTOR_KIND_LABELS.get(kind or "", "その他")


def outcome_label(outcome: str | None) -> str:
    return OUTCOME_LABELS.get(outcome or "", "失敗" if outcome else "")


def target_type_label(target_type: str | None) -> str:
    return TARGET_TYPE_LABELS.get(target_type or "", "")


def _value_text(key: str, value: Any) -> str | None:
    if value is None or isinstance(value, dict):
        return None
    if key == "role":
        from kiban.core.identity.permissions import role_label

        if isinstance(value, list):
            return " → ".join(role_label(str(v)) for v in value)
        return role_label(str(value))
    if key == "permission":
        from kiban.core.identity.permissions import permission_label

        return permission_label(str(value))
    if isinstance(value, list):
        return None
    if isinstance(value, bool):
        return "はい" if value else "いいえ"
    if isinstance(value, int | float):
        return f"{value:,}"
    words = DETAIL_VALUE_LABELS.get(key)
    if words is None:
        return str(value)
    if str(value) in words:
        return words[str(value)]
    # A coded value nobody has put into words yet is not for screens; free text (e.g. the
    # reason typed for replacing a fee schedule) is.
    return None if _CODE.fullmatch(str(value)) else str(value)


def details_text(details: Mapping[str, Any] | None) -> str:
    """The shown part of an entry's details: 「理由: パスワードの誤り / 段階: パスワード」."""
    if not details:
        return ""
    parts = []
    for key, label in DETAIL_KEYS.items():
        if key in details and (text := _value_text(key, details[key])):
            parts.append(f"{label}: {text}")
    return " / ".join(parts)


# 電子申請 (modules/forms, issue #12)
ACTION_LABELS.update({
    "forms.form.created": "電子申請フォームの作成",
    "forms.attachment.read": "電子申請の添付ファイルの閲覧",
    "forms.form.updated": "電子申請フォームの変更",
    "forms.form.published": "電子申請フォームの公開",
    "forms.form.shared": "電子申請フォームのテンプレート共有",
    "forms.form.unshared": "電子申請フォームのテンプレート共有の停止",
    "forms.form.copied": "共有テンプレートからのフォームの作成",
    "forms.submission.status_changed": "電子申請の状況の変更",
    "forms.submission.assigned": "電子申請の担当者の変更",
    "forms.submission.commented": "電子申請への内部メモ",
    "forms.submission.messaged": "電子申請の申請者への連絡",
    "forms.submission.exported": "電子申請の書き出し",
})
TARGET_TYPE_LABELS.update({"form": "電子申請フォーム", "form_submission": "電子申請"})
DETAIL_KEYS.update({"form_title": "フォーム名", "receipt_no": "受付番号", "form_status": "状況", "form_version": "版"})
DETAIL_VALUE_LABELS.update({"form_status": {"received": "受付", "reviewing": "審査中", "completed": "完了", "returned": "差戻し"}})


# -- 施設予約 (modules/reservations, issue #12) ------------------------------------------------------
ACTION_LABELS.update({
    "reservations.facility.created": "施設の登録",
    "reservations.facility.updated": "施設の設定の変更",
    "reservations.facility.retired": "施設の削除（廃止）",
    "reservations.room.added": "施設の部屋・区画の追加",
    "reservations.booker.registered": "施設の利用者登録",
    "reservations.booker.approved": "登録団体の承認",
    "reservations.booking.created": "施設の予約",
    "reservations.booking.cancelled": "施設の予約の取消",
    "reservations.lottery.opened": "抽選の受付開始",
    "reservations.lottery.applied": "抽選への申込み",
    "reservations.lottery.seed_fixed": "抽選のシードの確定（抽選開始）",
    "reservations.lottery.drawn": "抽選の実施",
    "reservations.room.updated": "施設の部屋・区画の変更",
    "reservations.room.closed": "部屋・区画の新しい予約の受付停止",
    "reservations.room.reopened": "部屋・区画の新しい予約の受付再開",
    "reservations.room.removed": "施設の部屋・区画の削除",
    "reservations.booking.exported": "施設の予約一覧の書き出し（CSV・Excel）",
})
TARGET_TYPE_LABELS.update({
    "facility": "施設",
    "facility_room": "施設の部屋・区画",
    "facility_booking": "施設の予約",
    "facility_booker": "施設の利用者",
    "facility_lottery": "施設の抽選",
})
DETAIL_KEYS.update({
    "facility": "施設",
    "slot": "枠",
    "seed": "抽選のシード",
    "applicants": "応募数",
    "winners": "当選数",
    "changed": "変更した項目",
    "from": "開始日",
    "to": "終了日",
    "format": "形式",
})


# -- 通知 (core/notify, issue #12) ------------------------------------------------------------------
ACTION_LABELS.update({
    "notify.template.updated": "通知の文面の変更",
    "notify.template.reset": "通知の文面を標準に戻す",
})
TARGET_TYPE_LABELS.update({"notify_template": "通知の文面"})
DETAIL_KEYS.update({"template": "通知の種類"})


# -- 書き出し (core/exports) -------------------------------------------------------------------------
ACTION_LABELS.update({
    "exports.export.requested": "書き出しの依頼",
    "exports.export.created": "書き出しファイルの作成",
    "exports.export.downloaded": "書き出しファイルの受け取り",
    "exports.export.deleted": "書き出しファイルの削除",
})
TARGET_TYPE_LABELS.update({"export": "書き出しファイル"})
DETAIL_KEYS.update({"title": "内容"})  # "rows" is already 行数
