"""Signed, expiring session tokens: who is logged in, kept in a browser cookie across reloads.

A token is ``v1.<payload>.<mac>`` (base64url, cookie-safe). The payload is the user name, the
role and the expiry (Unix seconds); the MAC is HMAC-SHA256 under the server's secret over the
payload *and a digest of the user's password hash*, so a token stops working when the user is
removed from the users file, when their role changes (the role in the token no longer matches)
and when their password changes. Nothing is stored on the server: any process with the same
secret accepts the token until it expires.

The secret (:func:`session_secret`): ``$QUALITY_SECRET``, else the ``secret`` key of the users
file, else a random secret made when this process started: then sessions do not survive a server
restart (everyone logs in again). :func:`sign` and :func:`verify` are pure: the secret and the
time are arguments. This module does not import streamlit.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from core.auth import MIN_SECRET_LENGTH, AuthConfigError, User, load_secret

COOKIE_NAME = "quality_session"
SECRET_ENV = "QUALITY_SECRET"
SESSION_SECONDS = 12 * 3600       # one working day; then the user logs in again
MAX_TOKEN_LENGTH = 4096           # a cookie longer than this is not ours
_VERSION = "v1"
_DOMAIN = b"annotation-quality session v1\n"   # keeps these MACs apart from any other use of the secret

#: Made once per process: the fallback when no secret is configured.
_PROCESS_SECRET = secrets.token_bytes(32)


class InvalidSession(ValueError):
    """The token cannot be used; the message says why (for logs and tests, not for the visitor)."""


@dataclass(frozen=True)
class SessionSecret:
    key: bytes
    #: Where it came from: "QUALITY_SECRET", "users file" or "process" (lost on restart).
    source: str

    @property
    def survives_restart(self) -> bool:
        return self.source != "process"


def session_secret(users_path: str | os.PathLike[str] | None = None) -> SessionSecret:
    """The key that signs session tokens: ``$QUALITY_SECRET``, else the users file's ``secret``, else
    the per-process random secret. AuthConfigError if a configured secret is too short."""
    env = os.environ.get(SECRET_ENV, "").strip()
    if env:
        if len(env) < MIN_SECRET_LENGTH:
            raise AuthConfigError(f"{SECRET_ENV} must have at least {MIN_SECRET_LENGTH} characters")
        return SessionSecret(env.encode("utf-8"), SECRET_ENV)
    configured = load_secret(users_path)
    if configured:
        return SessionSecret(configured.encode("utf-8"), "users file")
    return SessionSecret(_PROCESS_SECRET, "process")


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, payload: str, password_hash: str) -> bytes:
    pw_digest = hashlib.sha256(password_hash.encode("utf-8")).digest()
    return hmac.new(secret, _DOMAIN + payload.encode("ascii") + b"\n" + pw_digest, hashlib.sha256).digest()


def sign(user: User, secret: bytes, now: float, lifetime: float = SESSION_SECONDS) -> str:
    """A token for ``user`` valid until ``now + lifetime`` (seconds since the epoch)."""
    if not secret:
        raise ValueError("secret must not be empty")
    if lifetime <= 0:
        raise ValueError(f"lifetime must be positive, got {lifetime!r}")
    claims = {"u": user.name, "r": user.role, "exp": int(now + lifetime)}
    payload = _b64encode(json.dumps(claims, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    return f"{_VERSION}.{payload}.{_b64encode(_mac(secret, payload, user.password_hash))}"


def expiry(token: str) -> int | None:
    """The expiry written in a token (unverified: for cookie lifetimes only), or None."""
    try:
        return int(_claims(token)[1]["exp"])
    except (InvalidSession, KeyError, TypeError, ValueError):
        return None


def _claims(token: str) -> tuple[str, dict, bytes]:
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidSession("not a session token")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != _VERSION:
        raise InvalidSession("not a session token (expected v1.<payload>.<mac>)")
    try:
        claims = json.loads(_b64decode(parts[1]).decode("utf-8"))
        mac = _b64decode(parts[2])
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidSession("malformed session token") from None
    if (not isinstance(claims, dict) or not isinstance(claims.get("u"), str) or not isinstance(claims.get("r"), str)
            or not isinstance(claims.get("exp"), int) or isinstance(claims.get("exp"), bool)):
        raise InvalidSession("malformed session token")
    return parts[1], claims, mac


def verify(token: str, users: Mapping[str, User], secret: bytes, now: float) -> User:
    """The user a valid token names; :class:`InvalidSession` (saying why) otherwise.

    Valid means: well formed, signed with ``secret`` for the user's current password hash, the
    user still configured with the same role, and not expired at ``now``.
    """
    payload, claims, mac = _claims(token)
    user = users.get(claims["u"])
    if user is None:
        raise InvalidSession(f"user {claims['u']!r} is no longer configured")
    if not hmac.compare_digest(mac, _mac(secret, payload, user.password_hash)):
        raise InvalidSession("bad signature (another secret, a changed password, or a forged token)")
    if claims["r"] != user.role:
        raise InvalidSession(f"the role of {user.name!r} changed from {claims['r']} to {user.role}")
    if claims["exp"] <= now:
        raise InvalidSession("the session expired")
    return user


class Revocations:
    """Tokens ended by a logout, remembered in this process until they expire (one lock guards it).

    Logging out clears the browser's cookie; this also refuses a copy of the token made before.
    Like the per-process secret it is lost on restart.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._until: dict[str, float] = {}

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()

    def revoke(self, token: str) -> None:
        exp = expiry(token)
        if exp is None:
            return
        with self._lock:
            now = self.clock()
            for key in [k for k, until in self._until.items() if until <= now]:
                del self._until[key]
            self._until[self._key(token)] = float(exp)

    def is_revoked(self, token: str) -> bool:
        with self._lock:
            until = self._until.get(self._key(token))
            return until is not None and until > self.clock()


#: The server's revocations (module state: every Streamlit session runs in this process).
REVOKED = Revocations()
