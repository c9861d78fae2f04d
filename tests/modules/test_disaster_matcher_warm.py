"""The server builds the 名寄せ matchers of open disasters when it starts (in the background), so
the first clerk to open a record on a disaster of a million registrations does not wait ~20 s
for it; a closed disaster is not built."""

from __future__ import annotations

from kiban.modules.disaster import matching
from tests.modules.test_disaster_web import KANAZAWA, WAJIMA, _open_disaster, _register


class _Lent:
    def __init__(self, session) -> None:
        self.session = session

    async def __aenter__(self):
        return self.session

    async def __aexit__(self, *exc) -> None:
        return None


async def test_open_disasters_matchers_are_built_at_start(staff, session) -> None:
    matching.forget()
    disaster = await _open_disaster(staff)
    first = await _register(await staff(WAJIMA, "staff"), WAJIMA, disaster, whereabouts="home")
    await _register(await staff(KANAZAWA, "staff"), KANAZAWA, disaster, whereabouts="relatives",
                    family_name="髙橋", family_kana="ﾀｶﾊｼ", given_kana="ｹﾝﾀ", phone="", household_key="K-1")
    assert disaster not in matching._MATCHERS

    assert await matching.warm(lambda: _Lent(session)) >= 1
    entry = matching._MATCHERS[disaster]
    assert entry.generation is not None and first in entry.matcher
    # The record page then finds the matcher current: nothing is built again.
    before = entry.generation
    assert (await matching.matcher_for(session, disaster)) is entry and entry.generation == before
    matching.forget()
