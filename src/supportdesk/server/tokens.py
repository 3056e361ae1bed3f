"""Role tokens for the team server: printed once, stored as SHA-256 only, revocable.

Roles nest: an ``agent`` asks, searches, rates and reads their own history; a ``trainer``
also manages adapters and exports the history; an ``admin`` also reloads the KB and
manages tokens. Tokens live in the history database, so every replica sharing it agrees.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from supportdesk.history import HistoryError, HistoryStore

Role = Literal["agent", "trainer", "admin"]
ROLES: tuple[Role, ...] = ("agent", "trainer", "admin")
TOKEN_PREFIX = "sdk_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MAX_EXPIRES_DAYS = 3650
"""The longest a token may be created for (ten years)."""
_LAST_TIME = 253402300799.0  # 9999-12-31 23:59:59 UTC: later than any expiry a valid token can have


def expiry_ok(expires_at: object) -> bool:
    """Whether a stored expiry is a time (or none: never expires); a row from before expiries were
    bounded may hold infinity or a time no clock can show: such a token is treated as expired."""
    if expires_at is None:
        return True
    try:
        value = float(expires_at)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return math.isfinite(value) and 0 <= value <= _LAST_TIME


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def role_allows(role: str, needed: Role) -> bool:
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Identity:
    """Who is asking: the token's name (recorded with their questions) and role."""

    name: str
    role: Role
    token_id: int = 0


class TokenError(ValueError):
    """A token that cannot be created or is not valid; the message says why."""


def check_expires_days(expires_days: object) -> None:
    """A token's lifetime: none (never expires) or a finite number of days in (0, MAX_EXPIRES_DAYS]."""
    if expires_days is None:
        return
    if not (isinstance(expires_days, int | float) and not isinstance(expires_days, bool)
            and math.isfinite(expires_days) and 0 < expires_days <= MAX_EXPIRES_DAYS):
        raise TokenError(f"--expires-days (expires_days) must be a number of days more than 0 and at most "
                         f"{MAX_EXPIRES_DAYS} (ten years), got {expires_days!r}; leave it out for a token that "
                         "does not expire")


class TokenStore:
    def __init__(self, history: HistoryStore) -> None:
        self.history = history
        self._seen: dict[str, tuple[Identity, float | None]] = {}
        """Tokens verified by this process: they keep working while a shared history database is
        unreachable (a revocation takes effect when it is back); unknown ones are refused."""

    def create(self, name: str, role: str, expires_days: float | None = None) -> str:
        """A new token (returned once; only its hash is kept)."""
        if role not in ROLES:
            raise TokenError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
        if not _NAME.match(name):
            raise TokenError(f"token name {name!r}: use 1-64 letters, digits, '.', '_', '@' or '-'")
        check_expires_days(expires_days)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        expires = time.time() + expires_days * 86400 if expires_days is not None else None
        try:
            self.history.add_token(name, role, hash_token(token), expires)
        except ValueError as exc:
            raise TokenError(str(exc)) from exc
        return token

    def verify(self, token: str) -> Identity | None:
        """The identity for a live token; None for an unknown, revoked or expired one."""
        digest = hash_token(token.strip())
        try:
            row = self.history.token_by_hash(digest)
        except HistoryError:
            seen = self._seen.get(digest)
            if seen is None or (seen[1] is not None and seen[1] < time.time()):
                raise
            return seen[0]
        if row is None or row["revoked_at"] is not None:
            self._seen.pop(digest, None)
            return None
        if not expiry_ok(row["expires_at"]) or (row["expires_at"] is not None and row["expires_at"] < time.time()):
            return None
        self.history.touch_token(row["id"])
        identity = Identity(row["name"], row["role"], row["id"])
        self._seen[digest] = (identity, row["expires_at"])
        return identity

    def expired(self, token: str) -> bool:
        row = self.history.token_by_hash(hash_token(token.strip()))
        return bool(row and row["revoked_at"] is None and row["expires_at"] is not None
                    and (not expiry_ok(row["expires_at"]) or row["expires_at"] < time.time()))

    def list(self) -> list[dict[str, object]]:
        """Active tokens; one whose stored expiry is not a time shows ``expires_at`` None and
        ``invalid`` true (it is refused as expired)."""
        rows = []
        for r in self.history.token_rows():
            row = {k: r[k] for k in ("name", "role", "created_at", "expires_at", "last_used_at")}
            row["invalid"] = not expiry_ok(row["expires_at"])
            for k in ("created_at", "expires_at", "last_used_at"):
                if not expiry_ok(row[k]):
                    row[k] = None
            rows.append(row)
        return rows

    def revoke(self, name: str) -> bool:
        return self.history.revoke_token(name)
