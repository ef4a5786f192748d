"""Users, roles and password hashes; the one rule that decides who may write.

Users live in a local TOML file: ``.streamlit/secrets.toml`` (git-ignored), or the file named by
the environment variable ``QUALITY_USERS_FILE``::

    [users.alice]
    role = "lead"            # lead | reviewer | stakeholder
    password_hash = "scrypt$16384$8$1$<salt, base64>$<hash, base64>"

An optional top-level ``secret = "..."`` (at least 32 characters) signs the session cookies
(:mod:`core.sessions`; ``$QUALITY_SECRET`` takes precedence). Passwords are stored only as salted
``hashlib.scrypt`` hashes (``python -m core.auth add-user`` writes them). :func:`authenticate`
throttles guessing: five failed logins in a row lock a name for a minute.

With NO users configured the app runs as a single local lead: every actor is a ``lead``. With
users configured an actor's role is the configured one; a name that is not a
configured user has no role and may not write. System actors (``cli``, ``demo-loader`` and names
starting with ``system:``) may always write: they run with file-system access to the store.

:func:`require_write` is called first by every write function of ``core`` (reviews, imports,
queue, settings), so a stakeholder cannot change data whatever the UI shows. This module does
not import streamlit.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import hmac
import os
import re
import secrets
import sys
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import roles as _roles
from core.roles import NO_ROLE, ROLES, ROLES_THAT_WRITE, Action, PermissionDenied  # noqa: F401 (re-exported)

LOCAL_ROLE = _roles.LEAD     # every actor's role when no users are configured
SYSTEM_ROLE = _roles.SYSTEM
SYSTEM_ACTORS = frozenset({"cli", "demo-loader"})
SYSTEM_PREFIX = "system:"
DEFAULT_USERS_FILE = Path(".streamlit") / "secrets.toml"
USERS_FILE_ENV = "QUALITY_USERS_FILE"
MIN_PASSWORD_LENGTH = 8
MIN_SECRET_LENGTH = 32          # characters of a configured session secret
LOCKOUT_FAILURES = 5            # failed logins in a row that lock a name ...
LOCKOUT_SECONDS = 60.0          # ... for this long, even with the right password

# scrypt cost: n=2**14, r=8 takes 16 MiB and ~50 ms per hash: cheap for a login, slow to guess.
SCRYPT_N, SCRYPT_R, SCRYPT_P, SALT_BYTES, KEY_BYTES = 2 ** 14, 8, 1, 16, 32
_MAX_N, _MAX_R, _MAX_P = 2 ** 17, 16, 4     # bounds for verifying a stored hash (memory, time)
_NAME_OK = re.compile(r"^[^\x00-\x1f\x7f]{1,64}$")


class AuthConfigError(ValueError):
    """The users file cannot be used (bad TOML, unknown role, malformed hash, ...)."""


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str


# ---------------------------------------------------------------------------------------------
# Password hashes
# ---------------------------------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=dklen,
                          maxmem=256 * n * r * p + (32 << 20))


def hash_password(password: str) -> str:
    """A new salted scrypt hash: ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>``."""
    if not isinstance(password, str) or not password:
        raise ValueError("the password must not be empty")
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_BYTES)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def parse_hash(stored: str) -> tuple[int, int, int, bytes, bytes]:
    """``(n, r, p, salt, key)`` of a stored hash; ValueError naming what is wrong."""
    if not isinstance(stored, str):
        raise ValueError("a password hash must be a string")
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("expected scrypt$<n>$<r>$<p>$<salt>$<hash>")
    try:
        n, r, p = (int(x) for x in parts[1:4])
    except ValueError:
        raise ValueError("n, r and p must be whole numbers") from None
    if not (1 < n <= _MAX_N and n & (n - 1) == 0):
        raise ValueError(f"n must be a power of two between 2 and {_MAX_N}")
    if not (1 <= r <= _MAX_R and 1 <= p <= _MAX_P):
        raise ValueError(f"r must be 1..{_MAX_R} and p 1..{_MAX_P}")
    try:
        salt = base64.b64decode(parts[4], validate=True)
        key = base64.b64decode(parts[5], validate=True)
    except (ValueError, TypeError):
        raise ValueError("salt and hash must be base64") from None
    if len(salt) < SALT_BYTES or len(key) != KEY_BYTES:
        # A fixed key length: scrypt output is a prefix-stable stream, a truncated hash must not verify.
        raise ValueError(f"expected a salt of at least {SALT_BYTES} bytes and a {KEY_BYTES}-byte hash")
    return n, r, p, salt, key


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches the stored hash (constant-time compare; a malformed hash is False)."""
    try:
        n, r, p, salt, key = parse_hash(stored)
    except ValueError:
        return False
    if not isinstance(password, str):
        return False
    try:
        candidate = _scrypt(password, salt, n, r, p, len(key))
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(candidate, key)


# A fixed hash to verify against when the user name is unknown, so a failed login takes the
# same time whether or not the name exists.
_DUMMY_HASH = None


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password(secrets.token_hex(16))
    return _DUMMY_HASH


# ---------------------------------------------------------------------------------------------
# The users file
# ---------------------------------------------------------------------------------------------
def is_system_actor(actor: str | None) -> bool:
    name = (actor or "").strip()
    return name in SYSTEM_ACTORS or name.startswith(SYSTEM_PREFIX)


def users_file() -> Path:
    """``$QUALITY_USERS_FILE`` if set, else ``.streamlit/secrets.toml`` under the current directory."""
    env = os.environ.get(USERS_FILE_ENV, "").strip()
    return Path(env) if env else DEFAULT_USERS_FILE


def check_user_name(name: str) -> str:
    """The name if it may be a user name; AuthConfigError otherwise."""
    if not isinstance(name, str) or not _NAME_OK.match(name) or name != name.strip():
        raise AuthConfigError(f"invalid user name {name!r}: 1-64 printable characters, "
                              "no leading or trailing spaces")
    if is_system_actor(name):
        raise AuthConfigError(f"{name!r} is reserved for system actors (cli, demo-loader, system:...)")
    return name


def parse_users(data: dict[str, Any], source: str = "users file") -> dict[str, User]:
    """The users of a parsed TOML document (its ``users`` table; other keys are ignored)."""
    table = data.get("users")
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise AuthConfigError(f"{source}: 'users' must be a table ([users.<name>] sections)")
    users: dict[str, User] = {}
    for name, entry in table.items():
        where = f"{source}: [users.{name}]"
        try:
            check_user_name(name)
        except AuthConfigError as exc:
            raise AuthConfigError(f"{source}: {exc}") from None
        if not isinstance(entry, dict):
            raise AuthConfigError(f"{where} must be a table with role and password_hash")
        if "password" in entry:
            raise AuthConfigError(f"{where} has a plain-text 'password': store only password_hash "
                                  "(create it with: python -m core.auth add-user NAME --role ROLE)")
        role = entry.get("role")
        if role not in ROLES:
            raise AuthConfigError(f"{where}: role must be one of {', '.join(ROLES)}, got {role!r}")
        stored = entry.get("password_hash")
        if stored is None:
            raise AuthConfigError(f"{where} has no password_hash (create it with: python -m core.auth hash)")
        try:
            parse_hash(stored)
        except ValueError as exc:
            raise AuthConfigError(f"{where}: password_hash is not a valid scrypt hash ({exc}); "
                                  "create one with: python -m core.auth hash") from None
        users[name] = User(name=name, role=role, password_hash=stored)
    return users


def parse_secret(data: dict[str, Any], source: str = "users file") -> str | None:
    """The top-level ``secret`` of a parsed users file (session cookie key), or None if absent."""
    secret = data.get("secret")
    if secret is None:
        return None
    if not isinstance(secret, str) or len(secret.strip()) < MIN_SECRET_LENGTH:
        raise AuthConfigError(f"{source}: 'secret' must be a string of at least {MIN_SECRET_LENGTH} characters "
                              "(make one with: python -c \"import secrets; print(secrets.token_urlsafe(32))\")")
    return secret.strip()


@dataclass(frozen=True)
class _UsersFile:
    users: dict[str, User]
    secret: str | None


_CACHE: dict[str, tuple[tuple[int, int, int], _UsersFile]] = {}


def _read_users_file(path: str | os.PathLike[str] | None) -> _UsersFile:
    """The users and the session secret of the users file (see :func:`load_users`)."""
    explicit = path is not None or bool(os.environ.get(USERS_FILE_ENV, "").strip())
    p = Path(path) if path is not None else users_file()
    try:
        st = p.stat()
    except FileNotFoundError:
        if explicit:
            raise AuthConfigError(f"users file {p} does not exist (set by "
                                  f"{'the caller' if path is not None else USERS_FILE_ENV})") from None
        return _UsersFile({}, None)
    except OSError as exc:
        raise AuthConfigError(f"cannot read users file {p}: {exc}") from None
    key = str(p.resolve())
    stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise AuthConfigError(f"users file {p} is not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AuthConfigError(f"cannot read users file {p}: {exc}") from None
    parsed = _UsersFile(parse_users(data, str(p)), parse_secret(data, str(p)))
    _CACHE[key] = (stamp, parsed)
    return parsed


def load_users(path: str | os.PathLike[str] | None = None) -> dict[str, User]:
    """The configured users by name; ``{}`` (single local lead mode) if there are none.

    ``path`` defaults to :func:`users_file`. The default file may be absent (no users); a file
    named explicitly (argument or ``$QUALITY_USERS_FILE``) must exist, so a mistyped path never
    silently turns every visitor into a lead. Raises :class:`AuthConfigError` with the file
    and the problem. Parsed once per file version (path, mtime, size).
    """
    return dict(_read_users_file(path).users)


def load_secret(path: str | os.PathLike[str] | None = None) -> str | None:
    """The users file's top-level ``secret`` (the session cookie key), or None if it has none."""
    return _read_users_file(path).secret


# ---------------------------------------------------------------------------------------------
# Login and its throttle
# ---------------------------------------------------------------------------------------------
class LoginThrottle:
    """Failed logins in a row per name: after ``max_failures`` the name is refused for ``lockout_seconds``.

    In-process state shared by every session of the server (one lock guards it). Names that are
    not users are counted too, so a lockout says nothing about which names exist. Each attempt
    is counted as a failure when it starts and forgiven when it succeeds, so parallel guesses
    cannot slip past the limit while the password hashes are being checked. ``clock`` returns
    seconds (monotonic); tests pass a fake one.
    """

    def __init__(self, max_failures: int = LOCKOUT_FAILURES, lockout_seconds: float = LOCKOUT_SECONDS,
                 clock: Callable[[], float] = time.monotonic, max_names: int = 10_000) -> None:
        if max_failures < 1 or lockout_seconds <= 0:
            raise ValueError("max_failures must be >= 1 and lockout_seconds > 0")
        self.max_failures, self.lockout_seconds, self.clock = max_failures, lockout_seconds, clock
        self._max_names = max_names
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}
        self._locked_until: dict[str, float] = {}

    def _expire(self, name: str, now: float) -> None:
        until = self._locked_until.get(name)
        if until is not None and until <= now:  # the lockout is over: a fresh count
            del self._locked_until[name]
            self._failures.pop(name, None)

    def is_locked(self, name: str) -> bool:
        """Whether ``name`` is refused right now."""
        with self._lock:
            self._expire(name, self.clock())
            return name in self._locked_until or self._failures.get(name, 0) >= self.max_failures

    def begin(self, name: str) -> bool:
        """Start an attempt for ``name``: False if the name is locked (or its last allowed attempts are
        still running), else True, with the attempt counted as a failure until :meth:`end` says otherwise."""
        with self._lock:
            self._expire(name, self.clock())
            if name in self._locked_until or self._failures.get(name, 0) >= self.max_failures:
                return False
            if name not in self._failures and len(self._failures) >= self._max_names:
                self._forget_one()
            self._failures[name] = self._failures.get(name, 0) + 1
            return True

    def end(self, name: str, ok: bool) -> bool:
        """Finish an attempt begun with :meth:`begin`; True if this failure started a lockout."""
        with self._lock:
            if ok:
                self._failures.pop(name, None)
                self._locked_until.pop(name, None)
                return False
            if self._failures.get(name, 0) >= self.max_failures and name not in self._locked_until:
                self._locked_until[name] = self.clock() + self.lockout_seconds
                return True
            return False

    def _forget_one(self) -> None:
        """Drop the oldest name that is not locked (bounded memory under a flood of names)."""
        for name in self._failures:
            if name not in self._locked_until:
                del self._failures[name]
                return
        oldest = next(iter(self._failures))
        del self._failures[oldest]
        self._locked_until.pop(oldest, None)


#: The server's throttle (module state: every Streamlit session runs in this process).
LOGIN_THROTTLE = LoginThrottle()


def authenticate(name: str, password: str, users: dict[str, User], *,
                 on_lockout: Callable[[str], None] | None = None,
                 throttle: LoginThrottle | None = None) -> User | None:
    """The user if ``name`` and ``password`` match a configured user, else None.

    Throttled (:class:`LoginThrottle`, default :data:`LOGIN_THROTTLE`): after
    :data:`LOCKOUT_FAILURES` failures in a row a name is refused for :data:`LOCKOUT_SECONDS`, even
    with the right password; a success resets the count. Every attempt costs one scrypt check,
    whether the name exists, the password is right or the name is locked, so timing tells
    nothing. ``on_lockout(name)`` is called once when a lockout starts (the app audits it).
    """
    throttle = LOGIN_THROTTLE if throttle is None else throttle
    key = (name or "").strip()
    if not throttle.begin(key):
        verify_password(password or "", _dummy_hash())  # same cost as a real check
        return None
    user = users.get(key)
    if user is None:
        verify_password(password or "", _dummy_hash())
        ok = False
    else:
        ok = verify_password(password or "", user.password_hash)
    if throttle.end(key, ok) and on_lockout is not None:
        on_lockout(key)
    return user if ok else None


LOCKOUT_ACTOR = "system:auth"
LOCKOUT_ACTION = "auth.lockout"


def audit_lockout(store: Any, name: str) -> None:
    """Write one audit row for a login lockout of ``name`` (``store``: anything with ``audit``,
    e.g. :class:`core.store.Store`; the row is written by the system actor ``system:auth``)."""
    store.audit(LOCKOUT_ACTOR, LOCKOUT_ACTION, new_value=name[:64],
                detail={"name": name[:64], "failures": LOCKOUT_FAILURES, "locked_seconds": LOCKOUT_SECONDS})


# ---------------------------------------------------------------------------------------------
# Roles
# ---------------------------------------------------------------------------------------------
def role_of(actor: str | None, users: dict[str, User] | None = None) -> str:
    """The role of ``actor``: ``system`` for system actors; ``lead`` for everyone when no users
    are configured; else the configured role, or ``none`` for a name that is not a user."""
    name = (actor or "").strip()
    if is_system_actor(name):
        return SYSTEM_ROLE
    users = load_users() if users is None else users
    if not users:
        return LOCAL_ROLE
    user = users.get(name)
    return user.role if user is not None else NO_ROLE


def may_write(actor: str | None, users: dict[str, User] | None = None) -> bool:
    return _roles.may_write(role_of(actor, users))


def may(actor: str | None, action: Action | str, users: dict[str, User] | None = None) -> bool:
    """Whether ``actor`` may take ``action`` (the pages' switch for showing a control)."""
    try:
        return _roles.allowed(role_of(actor, users), action)
    except AuthConfigError:
        return False


def authorize(actor: str | None, action: Action | str | None, users: dict[str, User] | None = None) -> None:
    """The one permission check: raise :class:`core.roles.PermissionDenied` unless ``actor``'s role
    may take ``action`` (``None``: may change anything at all). Every write in core calls it first."""
    _roles.check(role_of(actor, users), action, actor)


def require_write(actor: str | None, users: dict[str, User] | None = None) -> None:
    """Raise :class:`core.roles.PermissionDenied` unless ``actor``'s role may change data at all."""
    authorize(actor, None, users)


# ---------------------------------------------------------------------------------------------
# Writing the users file (CLI)
# ---------------------------------------------------------------------------------------------
def _toml_str(value: str) -> str:
    """A TOML basic string (also a safe quoted key)."""
    out = ['"']
    for ch in value:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _user_block(name: str, role: str, password_hash: str) -> str:
    return (f"[users.{_toml_str(name)}]\n"
            f"role = {_toml_str(role)}\n"
            f"password_hash = {_toml_str(password_hash)}\n")


def _header_path(line: str) -> list[str] | None:
    """The key path of a ``[table]`` header line, or None if the line is not one."""
    s = line.strip()
    if not s.startswith("[") or s.startswith("[["):
        return None
    try:
        doc = tomllib.loads(s + "\n")
    except tomllib.TOMLDecodeError:
        return None
    path: list[str] = []
    while isinstance(doc, dict) and len(doc) == 1:
        k, doc = next(iter(doc.items()))
        path.append(k)
    return path or None


def _is_table_header(line: str) -> bool:
    s = line.strip()
    return s.startswith("[") and _header_path(line) is not None or s.startswith("[[")


def upsert_user_text(text: str, name: str, role: str, password_hash: str) -> str:
    """``text`` (a TOML document) with user ``name`` added or replaced; everything else kept.

    The user's old ``[users.<name>]`` section (and its sub-tables) is removed, the new one
    appended. The result is checked by parsing it: other entries must be unchanged.
    """
    check_user_name(name)
    if role not in ROLES:
        raise AuthConfigError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    parse_hash(password_hash)
    try:
        before = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AuthConfigError(f"the users file is not valid TOML: {exc}") from None
    kept: list[str] = []
    skipping = False
    for line in text.splitlines(keepends=True):
        if _is_table_header(line):
            path = _header_path(line)
            skipping = path is not None and len(path) >= 2 and path[0] == "users" and path[1] == name
        if not skipping:
            kept.append(line)
    body = "".join(kept).rstrip("\n")
    result = (body + "\n\n" if body else "") + _user_block(name, role, password_hash)
    try:
        after = tomllib.loads(result)
    except tomllib.TOMLDecodeError as exc:
        raise AuthConfigError(f"could not update the users file automatically ({exc}); "
                              f"add this section by hand:\n{_user_block(name, role, password_hash)}") from None
    expected = {k: v for k, v in before.items()}
    expected_users = dict(expected.get("users") or {})
    expected_users[name] = {"role": role, "password_hash": password_hash}
    expected["users"] = expected_users
    if after != expected:
        raise AuthConfigError("could not update the users file automatically (user "
                              f"{name!r} is defined in an unusual way); add this section by hand:\n"
                              f"{_user_block(name, role, password_hash)}")
    return result


def save_user(name: str, role: str, password: str, path: str | os.PathLike[str] | None = None) -> Path:
    """Add or update user ``name`` in the users file (created if absent, mode 0600)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AuthConfigError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    p = Path(path) if path is not None else users_file()
    text = p.read_text(encoding="utf-8") if p.exists() else ""
    result = upsert_user_text(text, name, role, hash_password(password))
    parse_users(tomllib.loads(result), str(p))  # the whole file must still load
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(result)
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()
    return p


def _has_terminal() -> bool:
    """Whether getpass can prompt (it reads the controlling terminal, /dev/tty)."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return sys.stdin is not None and sys.stdin.isatty()
    os.close(fd)
    return True


def _ask_password(stdin: bool) -> str:
    if stdin:
        pw = sys.stdin.readline().rstrip("\r\n")
        if not pw:
            raise AuthConfigError("no password on standard input")
        return pw
    if not _has_terminal():
        raise AuthConfigError("no terminal to ask for the password; pipe it in with --password-stdin, "
                              "e.g. echo PASSWORD | python -m core.auth add-user NAME --role ROLE --password-stdin")
    try:
        first = getpass.getpass("Password: ")
        second = getpass.getpass("Repeat password: ")
    except EOFError:
        raise AuthConfigError("no password given (end of input)") from None
    if first != second:
        raise AuthConfigError("the passwords do not match")
    if not first:
        raise AuthConfigError("the password must not be empty")
    return first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.auth", description="Manage dashboard users and roles.")
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add-user", help="add or update a user in the users file (prompts for the password)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--file", help=f"users file (default: ${USERS_FILE_ENV} or {DEFAULT_USERS_FILE})")
    add.add_argument("--password-stdin", action="store_true", help="read the password from one line of stdin")
    h = sub.add_parser("hash", help="print a password hash for a users file (prompts for the password)")
    h.add_argument("--password-stdin", action="store_true", help="read the password from one line of stdin")
    ls = sub.add_parser("list", help="list the configured users and their roles")
    ls.add_argument("--file", help=f"users file (default: ${USERS_FILE_ENV} or {DEFAULT_USERS_FILE})")
    args = parser.parse_args(argv)
    try:
        if args.command == "hash":
            print(hash_password(_ask_password(args.password_stdin)))
        elif args.command == "add-user":
            check_user_name(args.name)
            target = Path(args.file) if args.file else users_file()
            written = save_user(args.name, args.role, _ask_password(args.password_stdin), target)
            print(f"saved user {args.name!r} ({args.role}) in {written}")
        else:
            users = load_users(args.file) if args.file else load_users()
            if not users:
                print("no users configured: the app runs as a single local lead")
            for user in users.values():
                print(f"{user.name}\t{user.role}")
    except (AuthConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
