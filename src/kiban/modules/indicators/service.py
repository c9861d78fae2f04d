"""指標（調査によらない統計, issue #13 item 7): what the platform already knows, published
without asking anyone — common services in use, costs saved, 負担金, disaster registrations, and
survey answers the platform filled in — by prefecture and local government, and over time.

Disclosure control is the surveys module's rule (``surveys.disclosure``: a cell from fewer than 3
local governments is hidden, and so is whatever would let it be recomputed from the totals, on its
``Table``), with three additions:

* contributors are counted as distinct local governments (or, for disaster registrations,
  distinct persons after 名寄せ with the disaster module's threshold of 10) in every cell *and*
  every total, since one body can stand behind several cells of a row;
* the tables nest: a prefecture's table of its local governments has as column totals and grand
  total the national table's row for that prefecture, and the time series by area has as totals
  the area tables' totals. Each table is suppressed after the one it nests in, with those shared
  figures forced to be published or hidden exactly as they are there, and more cells hidden
  until nothing hidden can be recomputed (``settle``). So no suppressed figure can be recovered
  by combining the national, prefecture and local government views either;
* the check that nothing hidden can be recomputed is a linear-time graph test (``recoverable``,
  the same answer as ``disclosure.recoverable``'s exact elimination, which takes tens of seconds
  on a prefecture × month table with a thousand hidden cells).

The figures are counted by the database (GROUP BY over ``sources``) and kept for
``CACHE_SECONDS`` per process, so a busy public page does not count national tables each time.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kiban.core.registry.models import Organization, OrgType
from kiban.core.tenancy.context import unscoped
from kiban.kit.errors import InvalidInput
from kiban.modules.catalog.models import PATTERN_LABELS, Pattern
from kiban.modules.disaster import service as disaster_service
from kiban.modules.indicators import sources
from kiban.modules.surveys import disclosure

CACHE_SECONDS = 60.0
UNKNOWN_PERIOD = "-"
READ_REASON = "調査によらない指標: 団体数・人数と合計の集計のみ（少数のセルは秘匿）"
MIN_PERSONS = disaster_service.SMALL_COUNT
PREFILL_LABELS = {"confirmed": "プラットフォームの値をそのまま確認", "corrected": "プラットフォームの値を修正（理由つき）"}


@dataclass(frozen=True)
class Definition:
    key: str
    title: str
    description: str
    unit: str  # of the values
    contributor_unit: str  # 団体 / 人
    category_label: str

    @property
    def by_person(self) -> bool:
        return sources.SOURCES[self.key].by_person

    @property
    def minimum(self) -> int:
        return MIN_PERSONS if self.by_person else disclosure.MIN_RESPONDENTS


DEFINITIONS = {d.key: d for d in [
    Definition("adoptions", "共通サービスの利用", "共通サービスを利用中または実証参加中の件数（団体×サービス）。"
               "共通化のパターン別。時系列は利用を始めた時期。", "件", "団体", "共通化のパターン"),
    Definition("savings", "共通化による経費の削減額", "置き換える前のシステムの年間経費から、いまの年間経費を引いた額の合計"
               "（両方を登録した利用のみ）。時系列は利用を始めた時期。", "円", "団体", "共通化のパターン"),
    Definition("fees", "共同利用の負担金", "負担金算定書（取消したものを除く）の負担額の合計。時系列は年度。", "円", "団体",
               "システム"),
    Definition("disasters", "被災者台帳の登録", "被災者台帳に登録された件数（登録した市町村ごと）。"
               f"秘匿の基準は名寄せ後の人数で{MIN_PERSONS}人未満。時系列は登録した時期。", "件", "人", "災害"),
    Definition("prefill", "調査の回答の事前入力（ワンスオンリー）", "提出された調査の回答のうち、プラットフォームの値"
               "（人口・世帯数・利用状況など）で事前に入力された回答の数。時系列は提出した時期。", "件", "団体", "事前入力の結果"),
    Definition("avoided", "重複照会の抑止", "調査の作成者が、1年以内にほかの調査で尋ねた質問だと示されて省いた質問について、"
               "送付先の団体が答えずに済んだ件数（省いた質問の数 × 送付先の団体）。時系列は送付した時期。", "件", "団体", "内訳"),
]}


# -- disclosure control ------------------------------------------------------------------------------------

@dataclass
class IndicatorTable(disclosure.Table):
    """A ``disclosure.Table`` whose totals count distinct contributors (``row_n``, ``col_n``,
    ``total_n``) rather than the sum of the cells', with a threshold of ``minimum`` (3 or more)."""

    minimum: int = disclosure.MIN_RESPONDENTS
    row_n: dict = field(default_factory=dict)
    col_n: dict = field(default_factory=dict)
    total_n: int = 0

    def contributors(self, entry: tuple) -> int:
        if entry[0] == "cell":
            return self.cells.get((entry[1], entry[2]), (0, 0))[1]
        if entry[0] == "row":
            return self.row_n.get(entry[1], 0)
        if entry[0] == "col":
            return self.col_n.get(entry[1], 0)
        return self.total_n

    def value(self, entry: tuple) -> tuple[float, int]:
        total, _ = super().value(entry)
        n = self.contributors(entry)
        # disclosure.suppress hides 1–2; anything under this table's minimum maps there.
        return total, (n if n >= self.minimum else min(n, 1))

    def is_shown(self, entry: tuple) -> bool:
        return entry not in self.suppressed and self.contributors(entry) > 0


def _ends(entry: tuple) -> tuple[tuple, tuple]:
    """The entry as an edge between a row node and a column node of the table extended by its
    totals (row totals are the column ``None``, column totals the row ``None``)."""
    if entry[0] == "cell":
        return ("r", entry[1]), ("c", entry[2])
    if entry[0] == "row":
        return ("r", entry[1]), ("c", None)
    if entry[0] == "col":
        return ("r", None), ("c", entry[1])
    return ("r", None), ("c", None)


def _hidden(table: IndicatorTable) -> list[tuple]:
    return [e for e in table.entries() if e in table.suppressed and table.contributors(e) > 0]


def recoverable(table: IndicatorTable) -> set[tuple]:
    """The hidden entries that the published ones determine exactly: the same answer as
    ``disclosure.recoverable`` (the tests compare them on random tables), in linear time.

    A table with its row, column and grand totals is the incidence matrix of a bipartite graph
    (rows and the totals row against columns and the totals column; each entry an edge), whose
    solutions for the hidden entries are the cycles through them; so a hidden entry is fixed by
    what is published exactly when it lies on no cycle of hidden entries — when it is a bridge
    of the graph of hidden entries (Tarjan's bridge search, iterative)."""
    hidden = _hidden(table)
    adjacency: dict[tuple, list[tuple[tuple, int]]] = {}
    for i, e in enumerate(hidden):
        a, b = _ends(e)
        adjacency.setdefault(a, []).append((b, i))
        adjacency.setdefault(b, []).append((a, i))
    order: dict[tuple, int] = {}
    low: dict[tuple, int] = {}
    bridges: set[int] = set()
    for root in adjacency:
        if root in order:
            continue
        order[root] = low[root] = len(order)
        stack = [(root, -1, iter(adjacency[root]))]
        while stack:
            node, via, edges = stack[-1]
            for nxt, i in edges:
                if i == via:
                    continue
                if nxt in order:
                    low[node] = min(low[node], order[nxt])
                else:
                    order[nxt] = low[nxt] = len(order)
                    stack.append((nxt, i, iter(adjacency[nxt])))
                    break
            else:
                stack.pop()
                if stack:
                    parent = stack[-1][0]
                    low[parent] = min(low[parent], low[node])
                    if low[node] > order[parent]:
                        bridges.add(via)
    return {hidden[i] for i in bridges}


def _closing(table: IndicatorTable, entry: tuple, keep: set) -> list[tuple]:
    """The published entries whose hiding puts ``entry`` on a cycle of hidden entries (so that it
    can no longer be recomputed): the cheapest path between its two ends that avoids it, through
    hidden entries (free) and published ones (a cell costs less than a total), never through the
    figures published elsewhere (``keep``). Empty when there is no such path."""
    adjacency: dict[tuple, list[tuple[tuple, tuple]]] = {}
    for e in table.entries():
        if e == entry or e in keep or table.contributors(e) == 0:
            continue
        a, b = _ends(e)
        adjacency.setdefault(a, []).append((b, e))
        adjacency.setdefault(b, []).append((a, e))
    start, goal = _ends(entry)
    best: dict[tuple, float] = {start: 0.0}
    came: dict[tuple, tuple[tuple, tuple]] = {}
    queue: list[tuple[float, str, tuple]] = [(0.0, str(start), start)]
    while queue:
        cost, _, node = heapq.heappop(queue)
        if node == goal:
            break
        if cost > best.get(node, float("inf")):
            continue
        for nxt, e in adjacency.get(node, ()):
            step = 0.0 if e in table.suppressed else (1.0 if e[0] == "cell" else 1.5)
            if cost + step < best.get(nxt, float("inf")):
                best[nxt] = cost + step
                came[nxt] = (node, e)
                heapq.heappush(queue, (cost + step, str(nxt), nxt))
    if goal not in came:
        return []
    path, node = [], goal
    while node != start:
        node, e = came[node]
        if e not in table.suppressed:
            path.append(e)
    return path


def settle(table: IndicatorTable, *, show: set | frozenset = frozenset(), hide: set | frozenset = frozenset()
           ) -> IndicatorTable:
    """Suppress ``table`` in place: hide every entry from fewer than ``minimum`` contributors
    (primary, the surveys rule), make the entries published in an enclosing table (``show``)
    published here and those hidden there (``hide``) hidden here, then hide more (secondary)
    until no hidden entry can be recomputed from what is published (``recoverable``): for each
    entry that could be, the fewest published entries that put it on a cycle of hidden ones.
    (``disclosure.suppress`` adds one entry at a time with a search over every entry when no
    single one will do; here one path is found per recoverable entry.)"""
    keep = {e for e in show if table.contributors(e) >= table.minimum}
    table.suppressed = {e for e in table.entries() if 0 < table.contributors(e) < table.minimum}
    table.suppressed |= {e for e in hide if table.contributors(e) > 0}
    while True:  # each turn hides one more published entry, so this ends
        exposed = recoverable(table)
        if not exposed:
            break
        entry = min(exposed, key=lambda e: (e[0] != "cell", str(e)))
        extra = _closing(table, entry, keep)
        if not extra:  # pragma: no cover - only figures published elsewhere are left
            table.suppressed |= {e for e in table.entries() if e not in keep and table.contributors(e) > 0}
            break
        table.suppressed.update(extra)
    return table


def _forced(pairs: list[tuple[tuple, IndicatorTable, tuple]]) -> tuple[set, set]:
    show, hide = set(), set()
    for mine, parent, theirs in pairs:
        if parent.contributors(theirs) == 0:
            continue
        (show if parent.is_shown(theirs) else hide).add(mine)
    return show, hide


# -- counting ----------------------------------------------------------------------------------------------

async def _table(session: AsyncSession, d: Definition, grain: str, prefecture: str | None, *, series: bool
                 ) -> IndicatorTable:
    """Area × category (``series=False``) or period × area (``series=True``), unsuppressed."""
    dialect = (await session.connection()).dialect.name
    src = sources.subquery(d.key, grain, dialect)
    area = sources.area_key(src, prefecture)
    where = sources.scope_condition(src, prefecture)
    if series:
        # 時期不明 (an adoption without its start date) is a row like any other, so that a
        # column of the series adds up to the area table's row and no difference is left over.
        row_key, col_key = func.coalesce(src.c.period, UNKNOWN_PERIOD), area
    else:
        row_key, col_key = area, src.c.category
    cells: dict[tuple, tuple[float, int]] = {}
    async with unscoped(session, READ_REASON):
        for r, c, v, n in (await session.execute(sources.grouped(src, d.by_person, row_key, col_key, where=where))).all():
            cells[(r, c)] = (float(v or 0), int(n))
        row_n = {r: int(n) for r, _v, n in (await session.execute(sources.grouped(src, d.by_person, row_key, where=where))).all()}
        col_n = {c: int(n) for c, _v, n in (await session.execute(sources.grouped(src, d.by_person, col_key, where=where))).all()}
        total_n = int((await session.execute(sources.grouped(src, d.by_person, where=where))).one()[1] or 0)
    rows = sorted({r for r, _ in cells}, key=lambda r: (r == UNKNOWN_PERIOD, r))
    cols = sorted({c for _, c in cells})
    return IndicatorTable(rows, cols, cells, minimum=d.minimum, row_n=row_n, col_n=col_n, total_n=total_n)


_cache: dict[tuple, tuple[float, IndicatorTable]] = {}


def clear_cache() -> None:
    _cache.clear()


async def _cached(key: tuple, build) -> IndicatorTable:
    hit = _cache.get(key)
    if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
        return hit[1]
    table = await build()
    if len(_cache) > 512:
        _cache.pop(min(_cache, key=lambda k: _cache[k][0]))
    _cache[key] = (time.monotonic(), table)
    return table


async def national_area(session: AsyncSession, d: Definition) -> IndicatorTable:
    async def build():
        return settle(await _table(session, d, "fy", None, series=False))
    return await _cached((d.key, "area", None, None), build)


async def national_series(session: AsyncSession, d: Definition, grain: str) -> IndicatorTable:
    async def build():
        area = await national_area(session, d)
        table = await _table(session, d, grain, None, series=True)
        show, hide = _forced([(("col", p), area, ("row", p)) for p in table.cols] + [(("total",), area, ("total",))])
        return settle(table, show=show, hide=hide)
    return await _cached((d.key, "series", grain, None), build)


async def prefecture_area(session: AsyncSession, d: Definition, number: str) -> IndicatorTable:
    async def build():
        national = await national_area(session, d)
        table = await _table(session, d, "fy", number, series=False)
        show, hide = _forced([(("col", c), national, ("cell", number, c)) for c in table.cols]
                             + [(("total",), national, ("row", number))])
        return settle(table, show=show, hide=hide)
    return await _cached((d.key, "area", None, number), build)


async def prefecture_series(session: AsyncSession, d: Definition, grain: str, number: str) -> IndicatorTable:
    async def build():
        national = await national_area(session, d)
        across = await national_series(session, d, grain)
        area = await prefecture_area(session, d, number)
        table = await _table(session, d, grain, number, series=True)
        show, hide = _forced([(("row", t), across, ("cell", t, number)) for t in table.rows]
                             + [(("col", code), area, ("row", code)) for code in table.cols]
                             + [(("total",), national, ("row", number))])
        return settle(table, show=show, hide=hide)
    return await _cached((d.key, "series", grain, number), build)


# -- what the page and the API show ------------------------------------------------------------------------

@dataclass(frozen=True)
class Scope:
    prefecture: Organization | None = None
    organization: Organization | None = None
    grain: str = "fy"

    @property
    def number(self) -> str | None:
        return self.prefecture.prefecture_number if self.prefecture else None

    @property
    def label(self) -> str:
        if self.organization is not None:
            return self.organization.name
        return self.prefecture.name if self.prefecture else "全国"


async def prefectures(session: AsyncSession) -> list[Organization]:
    return list((await session.scalars(select(Organization).where(Organization.type == OrgType.prefecture.value)
                                       .order_by(Organization.code))).all())


async def scope_of(session: AsyncSession, prefecture: str | None, lg_code: str | None, grain: str | None) -> Scope:
    """The scope the query names, or InvalidInput naming every wrong parameter in Japanese."""
    errors = []
    pref = org = None
    prefecture = (prefecture or "").strip()
    lg_code = (lg_code or "").strip()
    grain = (grain or "fy").strip()
    if grain not in sources.GRAINS:
        errors.append({"field": "grain", "message": "時系列の単位は年度か月を選んでください。"})
    if prefecture:
        if len(prefecture) == 6 and prefecture.isascii() and prefecture.isdigit():
            pref = await session.scalar(select(Organization).where(Organization.code == prefecture,
                                                                   Organization.type == OrgType.prefecture.value))
        if pref is None:
            errors.append({"field": "prefecture", "message": "都道府県は6桁の団体コード（例: 北海道 010006）で指定してください。"})
    if lg_code:
        if len(lg_code) == 6 and lg_code.isascii() and lg_code.isdigit():
            org = await session.scalar(select(Organization).where(Organization.code == lg_code))
        if org is None or not org.prefecture_number:
            errors.append({"field": "lg_code", "message": "団体は地方公共団体の6桁の団体コード（例: 札幌市 011002）で指定してください。"})
            org = None
        elif pref is not None and org.prefecture_number != pref.prefecture_number:
            errors.append({"field": "lg_code", "message": f"{org.name}は{pref.name}の団体ではありません。"})
    if errors:
        raise InvalidInput(" ".join(e["message"] for e in errors), errors=errors)
    if org is not None and pref is None:
        pref = await session.scalar(select(Organization).where(Organization.type == OrgType.prefecture.value,
                                                               Organization.prefecture_number == org.prefecture_number))
    return Scope(pref, org, grain)


@dataclass(frozen=True)
class Cell:
    value: float | None  # None: suppressed (秘匿)
    contributors: int | None
    empty: bool = False  # nothing behind it (－)

    @property
    def suppressed(self) -> bool:
        return self.value is None and not self.empty


def _cell(table: IndicatorTable, entry: tuple) -> Cell:
    n = table.contributors(entry)
    if n == 0:
        return Cell(0, 0, empty=True)
    if entry in table.suppressed:
        return Cell(None, None)
    return Cell(table.value(entry)[0], n)


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    cells: list[Cell]
    total: Cell


@dataclass(frozen=True)
class Grid:
    row_label: str
    cols: list[tuple[str, str]]
    rows: list[Row]
    col_totals: list[Cell] | None
    total: Cell | None


@dataclass(frozen=True)
class Indicator:
    definition: Definition
    scope: Scope
    area: Grid  # by area (prefectures / local governments) × category
    series: list[tuple[str, Cell]]  # the scope's total per period
    series_by_area: Grid | None  # period × area (not for one local government)

    @property
    def suppressed_any(self) -> bool:
        cells = [c for r in self.area.rows for c in [*r.cells, r.total]] + [c for _, c in self.series]
        return any(c.suppressed for c in cells)


async def _category_labels(session: AsyncSession, d: Definition, keys: list[str]) -> list[tuple[str, str]]:
    if d.key in ("adoptions", "savings"):
        order = [p.value for p in Pattern]
        return [(k, PATTERN_LABELS[Pattern(k)][0] if k in order else k)
                for k in sorted(keys, key=lambda k: order.index(k) if k in order else len(order))]
    if d.key == "disasters":
        found = {x.id: x for x in await disaster_service.list_disasters(session) if x.id in set(keys)}
        ordered = sorted(keys, key=lambda k: (found[k].occurred_on.isoformat() if k in found else "", k), reverse=True)
        return [(k, found[k].name if k in found else "（削除された災害）") for k in ordered]
    if d.key == "prefill":
        return [(k, PREFILL_LABELS.get(k, k)) for k in PREFILL_LABELS if k in keys]
    if d.key == "avoided":
        return [(k, "省いた質問") for k in keys]
    return [(k, k) for k in keys]


def _period_label(period: str, grain: str) -> str:
    if period == UNKNOWN_PERIOD:
        return "時期不明"
    if len(period) == 4:
        return f"{period}年度"
    return f"{period[:4]}年{int(period[5:7])}月" if len(period) == 7 else period


def _grid(table: IndicatorTable, row_label: str, rows: list[tuple[str, str]], cols: list[tuple[str, str]], *,
          totals: bool = True) -> Grid:
    return Grid(row_label, cols,
                [Row(k, label, [_cell(table, ("cell", k, c)) for c, _ in cols], _cell(table, ("row", k)))
                 for k, label in rows],
                [_cell(table, ("col", c)) for c, _ in cols] if totals else None,
                _cell(table, ("total",)) if totals else None)


async def indicator(session: AsyncSession, key: str, scope: Scope) -> Indicator:
    d = DEFINITIONS[key]
    number = scope.number
    grain = "fy" if key == "fees" else scope.grain
    if number is None:
        area = await national_area(session, d)
        series = await national_series(session, d, grain)
        prefs = {p.prefecture_number: p.name for p in await prefectures(session)}
        area_rows = [(p, prefs.get(p, p)) for p in area.rows]
        series_cols = [(p, prefs.get(p, p)) for p in series.cols]
        row_label = "都道府県"
    else:
        area = await prefecture_area(session, d, number)
        series = await prefecture_series(session, d, grain, number)
        names = {o.code: o.name for o in (await session.scalars(select(Organization).where(
            Organization.code.in_(sorted(set(area.rows) | set(series.cols)) or ["-"])))).all()}
        area_rows = [(c, names.get(c, c)) for c in area.rows]
        series_cols = [(c, names.get(c, c)) for c in series.cols]
        row_label = "団体"
    cols = await _category_labels(session, d, list(area.cols))
    periods = [(t, _period_label(t, grain)) for t in series.rows]
    if scope.organization is not None:
        code = scope.organization.code
        area_grid = _grid(area, row_label, [(k, label) for k, label in area_rows if k == code], cols, totals=False)
        if not area_grid.rows:
            area_grid = Grid(row_label, cols, [Row(code, scope.organization.name,
                                                   [Cell(0, 0, empty=True) for _ in cols], Cell(0, 0, empty=True))],
                             None, None)
        line = [(label, _cell(series, ("cell", t, code))) for t, label in periods]
        return Indicator(d, scope, area_grid, line, None)
    area_grid = _grid(area, row_label, area_rows, cols)
    line = [(label, _cell(series, ("row", t))) for t, label in periods]
    return Indicator(d, scope, area_grid, line, _grid(series, "期間", periods, series_cols))


async def demo_note(session: AsyncSession) -> str | None:
    """Said on every page whose figures include the demo's invented adoptions and costs."""
    from kiban.modules.catalog import service as catalog_service

    if await catalog_service.demo_service_ids(session):
        return "共通サービスの利用と経費の数字には、デモ用の架空のデータが含まれています。"
    return None


async def indicators(session: AsyncSession, scope: Scope) -> list[Indicator]:
    return [await indicator(session, key, scope) for key in DEFINITIONS]


def csv_rows(item: Indicator, view: str) -> tuple[list[str], list[list]]:
    """The table as CSV rows (秘匿 for a suppressed cell, 空欄 for none), through kit/export."""
    grid = item.area if view == "area" else item.series_by_area
    if grid is None:  # one local government: its series
        header = ["期間", f"{item.definition.title}（{item.definition.unit}）"]
        return header, [[label, _csv_value(c)] for label, c in item.series]
    header = [grid.row_label, *[label for _, label in grid.cols], "計"]
    rows = [[r.label, *[_csv_value(c) for c in r.cells], _csv_value(r.total)] for r in grid.rows]
    if grid.col_totals is not None:
        rows.append(["計", *[_csv_value(c) for c in grid.col_totals], _csv_value(grid.total)])
    return header, rows


def _csv_value(c: Cell) -> object:
    if c.empty:
        return ""
    if c.value is None:
        return "秘匿"
    return int(c.value) if c.value == int(c.value) else c.value
