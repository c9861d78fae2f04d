"""Permissions are named ``<module>.<resource>.<action>``; roles are sets of them.

Every route declares the permission it needs (``require``) or that it is public (``PUBLIC``);
``tests/core/test_route_permissions.py`` walks the application and fails on any route that
does neither.
"""

from __future__ import annotations

import enum


class Permission(enum.StrEnum):
    tenancy_setting_read = "tenancy.setting.read"
    tenancy_setting_update = "tenancy.setting.update"
    audit_entry_read = "audit.entry.read"
    identity_membership_read = "identity.membership.read"
    identity_membership_manage = "identity.membership.manage"
    identity_apikey_manage = "identity.apikey.manage"
    tenancy_grant_manage = "tenancy.grant.manage"
    catalog_adoption_read = "catalog.adoption.read"
    catalog_adoption_write = "catalog.adoption.write"
    # Editing the national catalog: only acts at the platform operator (デジタル庁, 000019).
    catalog_service_manage = "catalog.service.manage"
    costs_schedule_manage = "costs.schedule.manage"
    costs_statement_read = "costs.statement.read"
    disaster_record_read = "disaster.record.read"
    disaster_record_write = "disaster.record.write"
    # Opening a disaster: acts only at a prefecture or 内閣府.
    disaster_disaster_manage = "disaster.disaster.manage"
    # Receiving the exports one asked for (core/exports); what may be exported is the exporter's own permission.
    exports_file_read = "exports.file.read"
    # 電子申請 (modules/forms, issue #12)
    forms_form_manage = "forms.form.manage"
    forms_submission_read = "forms.submission.read"
    forms_submission_process = "forms.submission.process"
    # Submitting through the API on an applicant's behalf (a kiosk, a partner system); residents
    # answer the public pages without signing in.
    forms_submission_create = "forms.submission.create"
    # 通知 (core/notify, issue #12)
    notify_delivery_read = "notify.delivery.read"
    notify_template_manage = "notify.template.manage"
    # A staff member's own in-app notices in the organisation (e.g. a 負担金算定書 was issued).
    notify_notice_read = "notify.notice.read"
    # Reading the tenant's own metered usage (core/metering, issue #12), month by month.
    metering_usage_read = "metering.usage.read"
    # 施設予約 (modules/reservations, issue #12): facilities, rules, lotteries; reading bookings and users.
    reservations_facility_manage = "reservations.facility.manage"
    reservations_booking_read = "reservations.booking.read"
    # >>> childcare (modules/childcare, issue #14): members here
    # Reading the applications coordinated here, the referrals naming our facilities, the runs and reports.
    childcare_application_read = "childcare.application.read"
    # Reading the monthly reports' parts about our residents (施設型給付費) and about our facilities.
    childcare_report_read = "childcare.report.read"
    # 利用調整基準, 公定価格, running and publishing the allocation.
    childcare_allocation_manage = "childcare.allocation.manage"
    # <<< childcare
    # >>> surveys (modules/surveys, issue #13): members here
    surveys_survey_manage = "surveys.survey.manage"
    surveys_response_read = "surveys.response.read"
    surveys_response_write = "surveys.response.write"
    # 課長決裁: signing off a response before it is submitted (団体管理者 only by default).
    surveys_response_certify = "surveys.response.certify"
    # 経由調査: a prefecture checks, returns, approves and forwards its municipalities' answers.
    surveys_relay_review = "surveys.relay.review"
    # <<< surveys
    # >>> governance (modules/governance, issue #15): members here
    # A body's own needs (with its confidential figures) and endorsing others' needs.
    governance_need_read = "governance.need.read"
    governance_need_write = "governance.need.write"
    # The secretariat's work (grouping, assessment, council, decisions, rollout): acts only at
    # the platform operator (デジタル庁, 000019); elsewhere its routes answer 404.
    governance_process_manage = "governance.process.manage"
    # A council member body's comment on a meeting's agenda before it is held.
    governance_comment_write = "governance.comment.write"
    # <<< governance
    # >>> opinions (modules/opinions, issue #13 item 8 意見照会): members here
    # Reading the consultations addressed to us and our own comments.
    opinions_comment_read = "opinions.comment.read"
    # Submitting, editing and withdrawing our comments on a draft.
    opinions_comment_write = "opinions.comment.write"
    # Writing a consultation, classifying and answering the comments, publishing the table:
    # acts only at a national body (府省庁); elsewhere its routes answer 404.
    opinions_consultation_manage = "opinions.consultation.manage"
    # <<< opinions
    # >>> indicators (modules/indicators, issue #13 item 7): members here
    # <<< indicators


class Role(enum.StrEnum):
    admin = "admin"
    staff = "staff"
    viewer = "viewer"

    @property
    def label(self) -> str:
        return ROLE_LABELS[self]


ROLE_LABELS = {Role.admin: "団体管理者", Role.staff: "職員", Role.viewer: "閲覧者"}


def role_label(role: str) -> str:
    """The Japanese name of a role code for screens; an unknown code is never shown as is."""
    try:
        return ROLE_LABELS[Role(role)]
    except ValueError:
        return "（不明な役割）"


# What a permission lets one do, in the words screens use (never show the code itself).
PERMISSION_LABELS: dict[Permission, str] = {
    Permission.tenancy_setting_read: "テナント設定と変更履歴の閲覧",
    Permission.tenancy_setting_update: "テナント設定の変更",
    Permission.audit_entry_read: "監査ログの閲覧",
    Permission.identity_membership_read: "職員一覧の閲覧",
    Permission.identity_membership_manage: "職員の管理（招待・役割の変更・停止）",
    Permission.identity_apikey_manage: "API キーの管理",
    Permission.tenancy_grant_manage: "ほかの団体への閲覧許可の管理",
    Permission.catalog_adoption_read: "共通システムの利用状況と経費の閲覧",
    Permission.catalog_adoption_write: "共通システムの利用状況と経費の登録",
    Permission.catalog_service_manage: "共通サービスカタログの編集",
    Permission.costs_schedule_manage: "負担金の算定と決定",
    Permission.costs_statement_read: "負担金算定書の閲覧",
    Permission.disaster_record_read: "被災者台帳の閲覧",
    Permission.disaster_record_write: "被災者台帳の登録・更新",
    Permission.disaster_disaster_manage: "災害の開設と終了",
}


def permission_label(permission: str) -> str:
    """The Japanese name of a permission code; an unknown code is never shown as is."""
    try:
        return PERMISSION_LABELS[Permission(permission)]
    except ValueError:
        return "（不明な権限）"

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.viewer: frozenset({Permission.tenancy_setting_read, Permission.catalog_adoption_read,
                            Permission.costs_statement_read, Permission.disaster_record_read}),
    Role.staff: frozenset({Permission.tenancy_setting_read, Permission.catalog_adoption_read,
                           Permission.catalog_adoption_write, Permission.costs_statement_read,
                           Permission.disaster_record_read, Permission.disaster_record_write,
                           Permission.disaster_disaster_manage}),
    Role.admin: frozenset(Permission),
}


# What an API key may be given: reading and writing tenant data, never managing people or keys.
# Every permission offered here has an /api route that requires it, and every read permission a
# documented /api/v1/t/ route requires is offered (tests/api/test_api_key_scopes.py).
API_KEY_GRANTABLE = (Permission.tenancy_setting_read, Permission.tenancy_setting_update, Permission.audit_entry_read,
                     Permission.identity_membership_read,
                     Permission.catalog_adoption_read, Permission.catalog_adoption_write,
                     Permission.costs_statement_read, Permission.costs_schedule_manage,
                     Permission.disaster_record_read, Permission.disaster_record_write)

# Never given to a key, though /api routes require them: a leaked key must not add or stop staff,
# mint or revoke keys, or open the tenant's records to another organisation. These stay with a
# person signed in with password and TOTP (their session works on the same /api routes).
API_KEY_WITHHELD: dict[Permission, str] = {
    Permission.identity_membership_manage: "職員の招待・役割の変更・停止は、サインインした団体管理者だけが行います。",
    Permission.identity_apikey_manage: "API キーでほかの API キーを発行・失効させることはできません。",
    Permission.tenancy_grant_manage: "ほかの団体への閲覧許可は、サインインした団体管理者だけが出せます。",
    Permission.disaster_disaster_manage: "災害の開設・対応の終了と一括名寄せは、市町村の区域を越えて被災者の記録の見え方を"
                                         "変えるため、サインインした都道府県・内閣府の職員だけが行います。",
}


def permissions_of(role: str) -> frozenset[Permission]:
    try:
        return ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return frozenset()


# 電子申請 (modules/forms, issue #12)
PERMISSION_LABELS.update({
    Permission.forms_form_manage: "電子申請フォームの作成・公開・共有",
    Permission.forms_submission_read: "電子申請の受付一覧の閲覧と書き出し",
    Permission.forms_submission_process: "電子申請の処理（状況の変更・担当・メモ・申請者への連絡）",
    Permission.forms_submission_create: "電子申請の代理送信（外部システム）",
})
ROLE_PERMISSIONS[Role.viewer] = ROLE_PERMISSIONS[Role.viewer] | {Permission.forms_submission_read}
ROLE_PERMISSIONS[Role.staff] = ROLE_PERMISSIONS[Role.staff] | {
    Permission.forms_form_manage, Permission.forms_submission_read, Permission.forms_submission_process}
ROLE_PERMISSIONS[Role.admin] = frozenset(Permission)
API_KEY_GRANTABLE = (*API_KEY_GRANTABLE, Permission.forms_form_manage, Permission.forms_submission_read,
                     Permission.forms_submission_process, Permission.forms_submission_create)


# 施設予約 (modules/reservations, issue #12): staff manage facilities and lotteries, viewers read bookings.
PERMISSION_LABELS.update({
    Permission.reservations_facility_manage: "施設予約の施設・抽選の管理と予約の取消",
    Permission.reservations_booking_read: "施設予約の予約状況と利用者の閲覧",
})
ROLE_PERMISSIONS[Role.viewer] = ROLE_PERMISSIONS[Role.viewer] | {Permission.reservations_booking_read}
ROLE_PERMISSIONS[Role.staff] = ROLE_PERMISSIONS[Role.staff] | {Permission.reservations_booking_read,
                                                               Permission.reservations_facility_manage}
ROLE_PERMISSIONS[Role.admin] = frozenset(Permission)
API_KEY_GRANTABLE = (*API_KEY_GRANTABLE, Permission.reservations_booking_read, Permission.reservations_facility_manage)


# -- metering (core/metering, issue #12): every role reads its own tenant's usage; API keys may too.
PERMISSION_LABELS[Permission.metering_usage_read] = "利用実績（計測した利用件数）の閲覧"
ROLE_PERMISSIONS[Role.viewer] = ROLE_PERMISSIONS[Role.viewer] | {Permission.metering_usage_read}
ROLE_PERMISSIONS[Role.staff] = ROLE_PERMISSIONS[Role.staff] | {Permission.metering_usage_read}
ROLE_PERMISSIONS[Role.admin] = frozenset(Permission)
API_KEY_GRANTABLE = (*API_KEY_GRANTABLE, Permission.metering_usage_read)


# 通知 (core/notify, issue #12)
PERMISSION_LABELS.update({
    Permission.notify_delivery_read: "通知の送信状況の閲覧",
    Permission.notify_template_manage: "通知の文面（テンプレート）の編集",
})
ROLE_PERMISSIONS[Role.viewer] = ROLE_PERMISSIONS[Role.viewer] | {Permission.notify_delivery_read}
ROLE_PERMISSIONS[Role.staff] = ROLE_PERMISSIONS[Role.staff] | {
    Permission.notify_delivery_read, Permission.notify_template_manage}
ROLE_PERMISSIONS[Role.admin] = frozenset(Permission)
API_KEY_GRANTABLE = (*API_KEY_GRANTABLE, Permission.notify_delivery_read, Permission.notify_template_manage)


# お知らせ (core/notify): every role reads its own notices (a key reads the key's own: none is
# addressed to a key, so it sees an empty list).
PERMISSION_LABELS[Permission.notify_notice_read] = "自分あてのお知らせの閲覧"
for _role in (Role.viewer, Role.staff):
    ROLE_PERMISSIONS[_role] = ROLE_PERMISSIONS[_role] | {Permission.notify_notice_read}
ROLE_PERMISSIONS[Role.admin] = frozenset(Permission)
API_KEY_GRANTABLE = (*API_KEY_GRANTABLE, Permission.notify_notice_read)


# 書き出し (core/exports): every role receives its own exports (each exporter checks its own permission).
PERMISSION_LABELS[Permission.exports_file_read] = "自分が依頼した書き出しファイルの受け取り"
for _role in (Role.viewer, Role.staff):
    ROLE_PERMISSIONS[_role] = ROLE_PERMISSIONS[_role] | {Permission.exports_file_read}
ROLE_PERMISSIONS[Role.admin] = frozenset(Permission)
API_KEY_GRANTABLE = (*API_KEY_GRANTABLE, Permission.exports_file_read)


# >>> childcare: labels, roles and API-key grants (same shape as the blocks above)
PERMISSION_LABELS.update({
    Permission.childcare_application_read: "保育施設の利用申込み・広域利用の協議・利用調整の結果の閲覧",
    Permission.childcare_report_read: "保育施設の月次報告（区民分の給付費・区内施設の配置）の閲覧",
    Permission.childcare_allocation_manage: "保育の利用調整基準・公定価格の設定と利用調整の実行・公開",
})
ROLE_PERMISSIONS[Role.viewer] = ROLE_PERMISSIONS[Role.viewer] | {Permission.childcare_application_read,
                                                                 Permission.childcare_report_read}
ROLE_PERMISSIONS[Role.staff] = ROLE_PERMISSIONS[Role.staff] | {
    Permission.childcare_application_read, Permission.childcare_report_read, Permission.childcare_allocation_manage}
ROLE_PERMISSIONS[Role.admin] = frozenset(Permission)
API_KEY_GRANTABLE = (*API_KEY_GRANTABLE, Permission.childcare_application_read, Permission.childcare_report_read,
                     Permission.childcare_allocation_manage)
# <<< childcare

# >>> surveys: labels, roles and API-key grants
PERMISSION_LABELS.update({
    Permission.surveys_survey_manage: "調査の作成・送付・集計・書き出し・公表",
    Permission.surveys_response_read: "届いた調査と回答の閲覧",
    Permission.surveys_response_write: "調査への回答の入力・取り込み・提出",
    Permission.surveys_response_certify: "調査回答の決裁（課長決裁）",
    Permission.surveys_relay_review: "経由調査の確認（差戻し・確認・国への送付）",
})
ROLE_PERMISSIONS[Role.viewer] = ROLE_PERMISSIONS[Role.viewer] | {Permission.surveys_response_read}
ROLE_PERMISSIONS[Role.staff] = ROLE_PERMISSIONS[Role.staff] | {
    Permission.surveys_survey_manage, Permission.surveys_response_read, Permission.surveys_response_write,
    Permission.surveys_relay_review}
ROLE_PERMISSIONS[Role.admin] = frozenset(Permission)
API_KEY_GRANTABLE = (*API_KEY_GRANTABLE, Permission.surveys_survey_manage, Permission.surveys_response_read,
                     Permission.surveys_response_write, Permission.surveys_relay_review)
API_KEY_WITHHELD[Permission.surveys_response_certify] = (
    "調査回答の決裁は、権限のある職員がサインインして自ら行います（API キーでは決裁できません）。")
# <<< surveys

# >>> governance: labels, roles and API-key grants
PERMISSION_LABELS.update({
    Permission.governance_need_read: "共通化の課題（自団体の提出と賛同）の閲覧",
    Permission.governance_need_write: "共通化の課題の提出と賛同",
    Permission.governance_process_manage: "共通化の事務局業務（グループ化・評価・連絡協議会・展開計画）",
    Permission.governance_comment_write: "連絡協議会への事前の意見",
})
ROLE_PERMISSIONS[Role.viewer] = ROLE_PERMISSIONS[Role.viewer] | {Permission.governance_need_read}
ROLE_PERMISSIONS[Role.staff] = ROLE_PERMISSIONS[Role.staff] | {
    Permission.governance_need_read, Permission.governance_need_write, Permission.governance_comment_write,
    Permission.governance_process_manage}
ROLE_PERMISSIONS[Role.admin] = frozenset(Permission)
API_KEY_GRANTABLE = (*API_KEY_GRANTABLE, Permission.governance_need_read, Permission.governance_need_write,
                     Permission.governance_process_manage)
API_KEY_WITHHELD[Permission.governance_comment_write] = ("連絡協議会への意見は、構成団体の職員がサインインして"
                                                         "自分の名前で出します（API キーでは出せません）。")
# <<< governance

# The catalog is one national source of truth, written by デジタル庁's staff (issue #15's 採択 too):
# a system holding a key does not classify services.
API_KEY_WITHHELD[Permission.catalog_service_manage] = (
    "共通サービスカタログの登録・分類は、デジタル庁の職員がサインインして行います（API キーでは行えません）。")

# >>> opinions: labels, roles and API-key grants
PERMISSION_LABELS.update({
    Permission.opinions_comment_read: "意見照会（届いた照会と自団体の意見）の閲覧",
    Permission.opinions_comment_write: "意見照会への意見・質問の提出・修正・取下げ",
    Permission.opinions_consultation_manage: "意見照会の作成・公開と、意見の分類・回答・一覧の公表（府省庁）",
})
ROLE_PERMISSIONS[Role.viewer] = ROLE_PERMISSIONS[Role.viewer] | {Permission.opinions_comment_read}
ROLE_PERMISSIONS[Role.staff] = ROLE_PERMISSIONS[Role.staff] | {
    Permission.opinions_comment_read, Permission.opinions_comment_write, Permission.opinions_consultation_manage}
ROLE_PERMISSIONS[Role.admin] = frozenset(Permission)
API_KEY_GRANTABLE = (*API_KEY_GRANTABLE, Permission.opinions_comment_read, Permission.opinions_comment_write,
                     Permission.opinions_consultation_manage)
# <<< opinions

# >>> indicators: labels, roles and API-key grants
# <<< indicators
