"""The allocation engine over HTTP: a calculator anyone may use (no stored data is read)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from kiban.core.identity.dependencies import PUBLIC
from kiban.kit.validation import MAX_YEN
from kiban.modules.costs.allocation import Member
from kiban.modules.costs.service import MethodSpec, run

router = APIRouter(prefix="/api/v1/costs", tags=["費用の按分"], dependencies=[PUBLIC])


class MemberIn(BaseModel):
    code: str = Field(min_length=1, max_length=20)
    name: str = Field(min_length=1, max_length=100)
    population: int | None = Field(None, ge=0, le=10**9)
    usage: int | None = Field(None, ge=0, le=10**12)


class AllocationRequest(BaseModel):
    amount: int = Field(ge=0, le=MAX_YEN, description="配分する総額（円、1,000兆円未満）")
    method: MethodSpec = MethodSpec()
    # at least one member: checked by the service, which says so in Japanese
    members: list[MemberIn] = Field(max_length=5000, json_schema_extra={"minItems": 1})


class FeeOut(BaseModel):
    code: str
    name: str
    fee: int
    percent: float
    explanation: str


class AllocationResponse(BaseModel):
    amount: int
    subsidy: int
    allocated: int
    method: str
    fees: list[FeeOut]


@router.post("/allocations", summary="総額を団体に按分する（1円単位、合計は必ず一致、内訳つき）",
             response_model=AllocationResponse)
async def allocate(body: AllocationRequest) -> AllocationResponse:
    result = run(body.amount, [Member(m.code, m.name, m.population, m.usage) for m in body.members], body.method)
    return AllocationResponse(amount=result.amount, subsidy=result.subsidy, allocated=result.allocated,
                              method=body.method.describe(),
                              fees=[FeeOut(code=f.member.code, name=f.member.name, fee=f.fee, percent=f.percent,
                                           explanation=f.explanation) for f in result.fees])
