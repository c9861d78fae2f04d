"""調査・照会 at national scale (issue #13) against a real ``kiban serve`` on PostgreSQL.

A fresh database (the real migrations, seed, application role with row-level security) gets
総務省's direct survey of 50 questions (one bound to population, numbers, choices, yes/no, free
text) sent to all 1,788 local governments, each respondent's answer filled in and certified
(決裁 is a person's act, so it is done beforehand, in the database), and one API key per
respondent holding 「調査への回答の入力・取り込み・提出」 only. ``kiban serve`` runs as its own
process as the application role (``--workers 2``, else 1; job runner off).

1. The burst of the last hour: ``--clients`` concurrent systems (closed loop, no pause; or, with
   ``--spread-seconds S``, each submission sent at its own moment over S seconds) submit all
   1,788 responses through ``POST /api/v1/t/{lg_code}/surveys/responses/{id}/submit``; every tenth
   is submitted twice (a retry). Checked in the database: every response submitted exactly once
   (one 提出 event each), every answer delivered to 総務省 (1,788 respondents in the aggregate rows).
2. The sender's aggregate view with all 1,788 × 50 answers in: ``GET /t/000027/surveys/{id}/progress``
   (the page: response rate, 47-prefecture grid, sums, distributions, per-type breakdowns) and its
   JSON twin, ``--views`` times each; p50/p95.
3. An .xlsx upload of a 50-question response: one respondent reopens, downloads its form, and
   uploads it filled in, ``--uploads`` times (each a full read, check and save).

Targets (the issue): aggregate view under 200 ms; submit p99 under 300 ms with none lost or
duplicated; upload under 1 s. Exits 1 when anything is lost or duplicated.

    .venv/bin/python bench/surveys.py [--clients 100] [--workers 2] [--views 20] [--uploads 5] [--spread-seconds S] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import secrets
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("KIBAN_SECRET_KEY", secrets.token_urlsafe(32))

import httpx  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402

from kiban.kit.db import create_engine, make_sessionmaker  # noqa: E402

PG = "postgresql+asyncpg://{user}@127.0.0.1:5432/{db}"
APP_ROLE = "kiban_app"
SOUMU = "000027"
CHOICES = ["導入済み", "導入予定", "検討中", "予定なし"]


def questions() -> list[dict]:
    found: list[dict] = [{"type": "number", "label": "住民基本台帳人口", "unit": "人", "binding": "registry.population",
                          "section": "基本"}]
    for i in range(35):
        found.append({"type": "number", "label": f"計測項目{i + 1}の件数", "unit": "件", "min": 0, "max": 10_000_000,
                      "required": True, "section": f"区分{i // 10 + 1}"})
    for i in range(8):
        found.append({"type": "choice", "label": f"システム{i + 1}の導入状況", "options": CHOICES, "required": True,
                      "section": "導入状況"})
    for i in range(4):
        found.append({"type": "yesno", "label": f"取組{i + 1}を実施していますか", "required": True, "section": "取組"})
    for i in range(2):
        found.append({"type": "text", "label": f"自由意見{i + 1}", "section": "意見"})
    assert len(found) == 50
    return found


def answers_for(rng: random.Random, defined: list[dict], prefilled: dict) -> dict:
    found: dict = {}
    for q in defined:
        if q.get("binding"):
            found[q["key"]] = prefilled.get(q["key"], {}).get("value", 0)
            found[q["key"]] = str(found[q["key"]])
        elif q["type"] == "number":
            found[q["key"]] = str(rng.randint(0, 5000))
        elif q["type"] == "choice":
            found[q["key"]] = rng.choice(CHOICES)
        elif q["type"] == "yesno":
            found[q["key"]] = rng.choice(["はい", "いいえ"])
        else:
            found[q["key"]] = "特になし"
    return found


async def pg_admin(sql: str) -> None:
    engine = create_engine(PG.format(user="postgres", db="postgres"), pool=False)
    try:
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text(sql))
    finally:
        await engine.dispose()


async def prepare(owner_url: str, seed: int) -> tuple[str, dict[str, tuple[str, str]], str]:
    """(survey id, {lg_code: (response id, key)}, the sender's key)."""
    from kiban.core.audit import service as audit
    from kiban.core.identity import apikeys
    from kiban.core.registry import service as registry_service
    from kiban.core.tenancy import safety  # noqa: F401 - the tenant safety net, as in the server
    from kiban.core.tenancy.context import bind_tenant, unscoped
    from kiban.modules.surveys import service
    from kiban.modules.surveys.models import SurveyResponse

    rng = random.Random(seed)
    engine = create_engine(owner_url)
    actor = audit.Actor("system", "計測", None)
    try:
        async with make_sessionmaker(engine)() as session:
            await bind_tenant(session, await registry_service.tenant_for(session, SOUMU))
            survey = await service.create_survey(session, service.Settings(
                title="全国の計測用調査（架空）", deadline="2099-12-31", minutes=60, target_kind="all"), actor="bench")
            await service.replace_definition(session, survey, questions(), [], expected_version=None)
            await service.send(session, survey, actor="bench", expected_version=None)
            sender_key = (await apikeys.create_key(session, actor, name="集計", kind="live",
                                                   permissions=["surveys.survey.manage"],
                                                   rate_limit_per_minute=10_000)).token
            defined = survey.definition["questions"]
            await session.commit()
            async with unscoped(session, "bench: fill in and certify every response"):
                responses = (await session.scalars(select(SurveyResponse).where(
                    SurveyResponse.survey_id == survey.id))).all()
                pairs = []
                for r in responses:
                    r.answers = answers_for(rng, defined, r.prefill)
                    r.status, r.certified_by, r.version = "certified", "計測 課長", 2
                    pairs.append((r.lg_code, r.id))
                await session.commit()
            found: dict[str, tuple[str, str]] = {}
            for lg_code, rid in pairs:
                await bind_tenant(session, await registry_service.tenant_for(session, lg_code))
                key = await apikeys.create_key(session, actor, name="調査回答", kind="live",
                                               permissions=["surveys.response.write", "surveys.response.read"],
                                               rate_limit_per_minute=10_000)
                found[lg_code] = (rid, key.token)
            await session.commit()
            return survey.id, found, sender_key
    finally:
        await engine.dispose()


async def burst(base: str, targets: dict[str, tuple[str, str]], clients: int, spread_s: float = 0.0) -> dict:
    queue: asyncio.Queue = asyncio.Queue()
    for i, (code, (rid, key)) in enumerate(sorted(targets.items())):
        queue.put_nowait((code, rid, key, 2 if i % 10 == 0 else 1))
    latencies: list[float] = []
    out = {"acknowledged": set(), "errors": {}}
    limits = httpx.Limits(max_connections=clients * 2, max_keepalive_connections=clients * 2)

    # With a spread, each submission is due at its own moment, uniform over the window (open loop:
    # 1,788 bodies pressing 提出 in the last stretch before the deadline); a client sends the next
    # due one, so at most ``clients`` are in flight.
    rng = random.Random(1788)
    due = sorted(rng.uniform(0, spread_s) for _ in range(queue.qsize())) if spread_s else None
    t_start = time.perf_counter()

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
            while not queue.empty():
                code, rid, key, times = queue.get_nowait()
                if due:
                    wait = due.pop(0) - (time.perf_counter() - t_start)
                    if wait > 0:
                        await asyncio.sleep(wait)
                for attempt in range(times + 5):  # a system retries what was not acknowledged
                    started = time.perf_counter()
                    try:
                        answer = await http.post(f"/api/v1/t/{code}/surveys/responses/{rid}/submit", json={},
                                                 headers={"Authorization": f"Bearer {key}"})
                        status = answer.status_code
                    except httpx.HTTPError:
                        status = 0
                    latencies.append(time.perf_counter() - started)
                    if status == 200:
                        out["acknowledged"].add(code)
                        times -= 1
                        if times == 0:
                            break
                    else:
                        out["errors"][status] = out["errors"].get(status, 0) + 1
                        await asyncio.sleep(0.5 * (attempt + 1))

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    out["seconds"] = time.perf_counter() - started
    out["latencies"] = sorted(latencies)
    return out


async def stored(owner_url: str, survey_id: str) -> dict:
    from kiban.modules.surveys.models import SurveyResponse, SurveyResponseEvent, SurveyValue

    engine = create_engine(owner_url, pool=False)
    try:
        async with engine.connect() as c:
            submitted = await c.scalar(select(func.count()).select_from(SurveyResponse).where(
                SurveyResponse.survey_id == survey_id, SurveyResponse.status == "submitted"))
            delivered = await c.scalar(select(func.count()).select_from(SurveyResponse).where(
                SurveyResponse.survey_id == survey_id, SurveyResponse.delivered_at.is_not(None)))
            ids = select(SurveyResponse.id).where(SurveyResponse.survey_id == survey_id)
            events = await c.scalar(select(func.count()).select_from(SurveyResponseEvent).where(
                SurveyResponseEvent.kind == "submitted", SurveyResponseEvent.response_id.in_(ids)))
            twice = await c.scalar(select(func.count()).select_from(
                select(SurveyResponseEvent.response_id).where(SurveyResponseEvent.kind == "submitted",
                                                              SurveyResponseEvent.response_id.in_(ids))
                .group_by(SurveyResponseEvent.response_id).having(func.count() > 1).subquery()))
            respondents = await c.scalar(select(func.count(func.distinct(SurveyValue.respondent_code))).where(
                SurveyValue.survey_id == survey_id))
            values = await c.scalar(select(func.count()).select_from(SurveyValue).where(SurveyValue.survey_id == survey_id))
    finally:
        await engine.dispose()
    return {"submitted": submitted, "delivered": delivered, "events": events, "twice": twice,
            "respondents": respondents, "values": values}


async def views(base: str, survey_id: str, key: str, count: int) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {"page": [], "json": []}
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        for _ in range(count):
            for kind, path in (("page", f"/t/{SOUMU}/surveys/{survey_id}/progress"),
                               ("json", f"/api/v1/t/{SOUMU}/surveys/{survey_id}/progress")):
                started = time.perf_counter()
                answer = await http.get(path, headers=headers)
                found[kind].append(time.perf_counter() - started)
                assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    return {k: sorted(v) for k, v in found.items()}


async def uploads(base: str, code: str, rid: str, key: str, count: int) -> list[float]:
    import openpyxl

    headers = {"Authorization": f"Bearer {key}"}
    csrf = secrets.token_urlsafe(32)  # the double-submit cookie, as the browser holds it
    found = []
    async with httpx.AsyncClient(base_url=base, timeout=60, cookies={"kiban_csrf": csrf}) as http:
        reopened = await http.post(f"/api/v1/t/{code}/surveys/responses/{rid}/reopen", headers=headers,
                                   json={"reason": "計測のため"})
        assert reopened.status_code == 200, reopened.text
        form = await http.get(f"/t/{code}/surveys/responses/{rid}/form.xlsx", headers=headers)
        book = openpyxl.load_workbook(io.BytesIO(form.content))
        sheet = book["回答"]
        for row in range(7, 7 + 35):  # the number questions, changed each time
            sheet[f"E{row}"] = random.randint(0, 5000)
        for _ in range(count):
            version = (await http.get(f"/api/v1/t/{code}/surveys/responses/{rid}", headers=headers)).json()["version"]
            for row in range(7, 7 + 35):
                sheet[f"E{row}"] = random.randint(0, 5000)
            buffer = io.BytesIO()
            book.save(buffer)
            started = time.perf_counter()
            answer = await http.post(f"/t/{code}/surveys/responses/{rid}/upload", headers=headers,
                                     data={"csrf_token": csrf, "expected_version": str(version)},
                                     files={"file": ("回答.xlsx", buffer.getvalue())})
            found.append(time.perf_counter() - started)
            assert answer.status_code == 303, (answer.status_code, answer.text[:500])
    return sorted(found)


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p))] * 1000 if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--views", type=int, default=20)
    parser.add_argument("--uploads", type=int, default=5)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--spread-seconds", type=float, default=0.0,
                        help="spread the burst's 1,788 submissions over this window (open loop, each at its own "
                             "moment; e.g. 60: the last hour compressed 60 times); 0, the default: closed loop")
    parser.add_argument("--keep", action="store_true", help="keep the database and the server's log")
    args = parser.parse_args()
    from _services_bookings import start_server
    from load import process_cpu, stop

    from kiban.ops.provision import build_database

    tmp = Path(tempfile.mkdtemp(prefix="kiban-surveys-"))
    db = f"kiban_surveys_{uuid.uuid4().hex[:8]}"
    owner_url, app_url = PG.format(user="postgres", db=db), PG.format(user=APP_ROLE, db=db)
    server = None
    asyncio.run(pg_admin(f'CREATE DATABASE "{db}"'))
    try:
        began = time.perf_counter()
        asyncio.run(build_database(owner_url, app_role=APP_ROLE))
        survey_id, targets, sender_key = asyncio.run(prepare(owner_url, args.seed))
        print(f"PostgreSQL database {db} ready in {time.perf_counter() - began:.0f} s: 総務省's 50-question survey "
              f"sent to {len(targets):,} local governments, each answer certified, one API key each", flush=True)
        server, base = start_server(app_url, args.workers, tmp)
        cpu = process_cpu(server.pid)
        result = asyncio.run(burst(base, targets, args.clients, args.spread_seconds))
        burst_cpu = process_cpu(server.pid) - cpu
        held = asyncio.run(stored(owner_url, survey_id))
        cpu = process_cpu(server.pid)
        seen = asyncio.run(views(base, survey_id, sender_key, args.views))
        view_cpu = (process_cpu(server.pid) - cpu) / (2 * args.views)
        code = "011002"
        upload = asyncio.run(uploads(base, code, targets[code][0], targets[code][1], args.uploads))
        load = os.getloadavg()[0]
    finally:
        stop(server)
        logs = sorted(tmp.glob("server-*.log"))
        errors_seen = [line for log in logs for line in log.read_text(errors="replace").splitlines()
                       if "Error" in line or "error" in line]
        if errors_seen:
            print("server log (errors, last 15 lines):\n  " + "\n  ".join(errors_seen[-15:]))
        if args.keep:
            print(f"kept database {db} and {tmp}")
        else:
            asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
            shutil.rmtree(tmp, ignore_errors=True)
    lat = result["latencies"]
    errors = sum(result["errors"].values())
    n = len(targets)
    ok = (len(result["acknowledged"]) == n and held["submitted"] == held["delivered"] == held["events"] == n
          and held["twice"] == 0 and held["respondents"] == n)
    submit_p99, page_p50, json_p50 = pct(lat, 0.99), pct(seen["page"], 0.5), pct(seen["json"], 0.5)
    print(f"burst        {len(lat):,} requests ({n:,} submissions, a tenth of them sent twice, and the retries of "
          f"failed requests) from {args.clients} concurrent clients in {result['seconds']:.1f} s: p50 "
          f"{pct(lat, 0.5):.0f} ms, p99 {submit_p99:.0f} ms; {len(result['acknowledged']):,} acknowledged; failed "
          f"requests (retried) {errors}{'' if not errors else ' ' + str(result['errors']) + ' (0: timeout or dropped)'}")
    print(f"server CPU   {burst_cpu / max(len(lat), 1) * 1000:.0f} ms a submission, {view_cpu * 1000:.0f} ms an aggregate "
          f"view (what an idle machine's latency follows from)")
    print(f"stored       {held['submitted']:,} submitted, {held['events']:,} 提出 events ({held['twice']} responses "
          f"twice), {held['delivered']:,} delivered, {held['respondents']:,} respondents and {held['values']:,} "
          f"answer cells in 総務省's aggregate rows")
    print(f"aggregates   page p50 {page_p50:.0f} ms p95 {pct(seen['page'], 0.95):.0f} ms; JSON p50 {json_p50:.0f} ms "
          f"p95 {pct(seen['json'], 0.95):.0f} ms ({args.views} each, {n:,} × 50 answers)")
    print(f"xlsx upload  50-question form: p50 {pct(upload, 0.5):.0f} ms, max {upload[-1] * 1000:.0f} ms "
          f"({args.uploads} uploads)")
    print(f"machine      load average {load:.1f} over {os.cpu_count()} CPUs at the end")
    print(f"verdict      {'PASS' if ok else 'FAIL'}: every submission acknowledged, stored once and delivered; "
          f"none lost or duplicated")
    print(f"targets      aggregate view < 200 ms: {'met' if max(page_p50, json_p50) < 200 else 'NOT met'}; "
          f"submit p99 < 300 ms: {'met' if submit_p99 < 300 else 'NOT met'}; upload < 1 s: "
          f"{'met' if upload[-1] < 1 else 'NOT met'}")
    print(f"rerun        .venv/bin/python bench/surveys.py --clients {args.clients} --workers {args.workers} "
          f"--views {args.views} --uploads {args.uploads} --seed {args.seed}"
          + (f" --spread-seconds {args.spread_seconds:g}" if args.spread_seconds else ""))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
