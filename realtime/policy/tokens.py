"""Signed tokens (JWT, HS256): who a client is and which rooms it may join.

Claims: ``sub`` (the user name), ``rooms`` (fnmatch patterns), ``exp``, and
``pub`` for a publisher token (it may send to its rooms but not subscribe).
``python -m realtime token --user ana --rooms 'team-*' --ttl 1h`` mints one.
"""

from __future__ import annotations

import argparse
import fnmatch
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"


class TokenError(Exception):
    """A token is missing, expired, forged, or not valid for this room."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Grant:
    user: str
    rooms: tuple[str, ...]
    exp: float = math.inf  # when the token, and a connection opened with it, ends
    publisher: bool = False  # may send to its rooms, not subscribe

    def allows(self, room: str) -> bool:
        return any(fnmatch.fnmatchcase(room, pattern) for pattern in self.rooms)

    def covers(self, other: Grant) -> bool:
        """Every room pattern of ``other`` is one of ours or matched by one."""
        return all(self.allows(pattern) for pattern in other.rooms)


def parse_patterns(value: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(",") if p.strip())


def mint(
    secret: str, user: str, rooms: Sequence[str], ttl: float, *, publisher: bool = False
) -> str:
    now = int(time.time())
    claims: dict[str, object] = {"sub": user, "rooms": list(rooms), "iat": now}
    claims["exp"] = now + int(ttl)
    if publisher:
        claims["pub"] = True
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify(secret: str, token: str) -> Grant:
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp"]}
        )
    except jwt.ExpiredSignatureError:
        raise TokenError(401, "token_expired", "the token has expired") from None
    except jwt.InvalidTokenError as exc:
        raise TokenError(401, "bad_token", f"the token is not valid: {exc}") from None
    rooms = claims.get("rooms", [])
    if not isinstance(rooms, list) or not all(isinstance(r, str) for r in rooms):
        raise TokenError(401, "bad_token", "'rooms' must be a list of patterns")
    sub = claims["sub"]
    if not isinstance(sub, str) or not 1 <= len(sub) <= 32 or not sub.isprintable():
        raise TokenError(401, "bad_token", "'sub' must be a user name")
    exp = claims["exp"]
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise TokenError(401, "bad_token", "'exp' must be a number")
    return Grant(user=sub, rooms=tuple(rooms), exp=float(exp), publisher=claims.get("pub") is True)


class Gate:
    """Applies ``--secret`` and ``--private-rooms`` to one request's token."""

    def __init__(self, secret: str, private_rooms: str) -> None:
        self.secret = secret
        self.private = parse_patterns(private_rooms)

    def is_private(self, room: str) -> bool:
        return any(fnmatch.fnmatchcase(room, p) for p in self.private)

    def check(self, room: str, token: str | None, *, subscribe: bool = True) -> Grant | None:
        """The grant of a valid token (or None when none is needed and none
        given); a publisher token may send (``subscribe=False``) only."""
        if not self.secret:
            if self.is_private(room):
                raise TokenError(403, "private_room", "this room is private")
            return None
        if token is None:
            if self.is_private(room):
                raise TokenError(401, "token_required", "this room needs a token")
            return None
        grant = verify(self.secret, token)
        if self.is_private(room) and not grant.allows(room):
            raise TokenError(403, "room_not_allowed", f"the token does not grant {room!r}")
        if grant.publisher and subscribe:
            raise TokenError(403, "publisher_token", "a publisher token may send but not subscribe")
        return grant

    def refresh(self, old: Grant, room: str, token: str) -> Grant:
        """A connection's new token: the same user, the same or wider rooms and
        a later ``exp``; else TokenError (and the connection keeps the old)."""
        grant = self.check(room, token)
        if grant is None:  # no secret configured: nothing to refresh against
            raise TokenError(400, "refresh_refused", "tokens are not enabled")
        if grant.user != old.user:
            raise TokenError(403, "refresh_refused", "the new token names another user")
        if not grant.covers(old):
            raise TokenError(403, "refresh_refused", "the new token grants fewer rooms")
        if grant.exp <= old.exp:
            raise TokenError(403, "refresh_refused", "the new token does not expire later")
        return grant


def token_from(
    query: Mapping[str, str],
    headers: Mapping[str, str],
    cookies: Mapping[str, str],
) -> str | None:
    """A token from ``?token=``, ``Authorization: Bearer``, the
    ``Sec-WebSocket-Protocol`` list (an entry holding a JWT) or the
    ``realtime_token`` cookie, in that order."""
    if query.get("token"):
        return query["token"]
    auth = headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    for proto in headers.get("Sec-WebSocket-Protocol", "").split(","):
        proto = proto.strip()
        if proto.count(".") == 2:
            return proto
    return cookies.get("realtime_token") or None


def parse_ttl(value: str) -> float:
    match = re.fullmatch(r"(\d+)\s*([smhd]?)", value.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"ttl {value!r}: expected e.g. 90s, 15m, 1h or 7d")
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return float(int(match.group(1)) * unit)


def cli(argv: Sequence[str], secret: str) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m realtime token",
        description="Mint a signed token (HS256 with --secret or REALTIME_SECRET).",
    )
    parser.add_argument("--user", required=True, help="the user name (sub claim)")
    parser.add_argument("--rooms", default="*", help="room patterns, comma-separated")
    parser.add_argument("--ttl", type=parse_ttl, default=3600.0, help="lifetime, e.g. 1h")
    parser.add_argument("--secret", default=secret, help="signing key [REALTIME_SECRET]")
    parser.add_argument(
        "--publisher",
        action="store_true",
        help="a token that may POST to its rooms but not subscribe (for a backend)",
    )
    args = parser.parse_args(argv)
    if not args.secret:
        parser.error("no secret: pass --secret or set REALTIME_SECRET")
    rooms = parse_patterns(args.rooms)
    print(mint(args.secret, args.user, rooms, args.ttl, publisher=args.publisher))
    return 0
