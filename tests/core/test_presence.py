"""The Roster on the in-process presence: leaves that outlive their caller,
counts and member lists cut at the limit."""

from __future__ import annotations

import asyncio

from realtime.backends.local import LocalBus, LocalPresence
from realtime.core.ports import Headcount, Member
from realtime.core.presence import Roster


class GatedPresence(LocalPresence):
    """The in-process presence, whose leaves wait for ``gate`` as a remote
    backend's wait for their reply."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def leave(self, room: str, member: Member, limit: int) -> Headcount:
        await self.gate.wait()
        return await super().leave(room, member, limit)


async def test_a_leave_whose_caller_is_cancelled_still_removes_the_member() -> None:
    presence = GatedPresence()
    roster = Roster(presence, LocalBus(), limit=3)
    await roster.join("r", Member("c1", "ana", "ws"))
    await roster.join("r", Member("c2", "bo", "ws"))
    # The handler of c1 is cancelled (its client vanished) while it leaves.
    leaving = asyncio.ensure_future(roster.leave("r", Member("c1", "ana", "ws")))
    await asyncio.sleep(0)
    leaving.cancel()
    await asyncio.wait([leaving])
    presence.gate.set()
    await roster.settle(1.0)
    assert [m.user for m in await presence.members("r")] == ["bo"]
    # A second leave of the same connection (a drop, then the socket's end)
    # does nothing.
    await roster.leave("r", Member("c1", "ana", "ws"))
    assert [m.user for m in await presence.members("r")] == ["bo"]


async def test_counts_are_whole_and_member_lists_cut_at_the_limit() -> None:
    presence = LocalPresence()
    for i in range(5):
        seen = await presence.join("r", Member(f"c{i}", f"u{i}", "ws"), 3)
        assert seen.count == i + 1 and len(seen.first) == min(i + 1, 3)
    # A leave lists the members only when fewer than the limit remain.
    assert await presence.leave("r", Member("c0", "u0", "ws"), 3) == Headcount(4)
    assert await presence.leave("r", Member("c1", "u1", "ws"), 3) == Headcount(3)
    left = await presence.leave("r", Member("c2", "u2", "ws"), 3)
    assert [m.user for m in left.first] == ["u3", "u4"]
