"""Identity and roles: password hashes, the users file, role rules, the CLI, and enforcement in core."""

from __future__ import annotations

import base64
import json
import re
import tomllib

import polars as pl
import pytest

from core import auth
from core.auth import (
    AuthConfigError,
    User,
    authenticate,
    hash_password,
    load_users,
    may_write,
    require_write,
    role_of,
    verify_password,
)
from core.store import PermissionDenied

LABELS = ["cancel", "refund", "other"]


def users_toml(**roles: str) -> str:
    """A users file with one user per keyword (name=role); every password is "pw-<name>-123"."""
    return "".join(f'[users."{name}"]\nrole = "{role}"\npassword_hash = "{hash_password(f"pw-{name}-123")}"\n\n'
                   for name, role in roles.items())


@pytest.fixture(scope="module")
def team_text() -> str:
    return users_toml(alice="lead", rita="reviewer", sam="stakeholder")


@pytest.fixture
def team(tmp_path, monkeypatch, team_text):
    """QUALITY_USERS_FILE pointing at a file with a lead, a reviewer and a stakeholder."""
    path = tmp_path / "users.toml"
    path.write_text(team_text, encoding="utf-8")
    monkeypatch.setenv("QUALITY_USERS_FILE", str(path))
    return path


@pytest.fixture
def no_users(tmp_path, monkeypatch):
    """QUALITY_USERS_FILE pointing at an empty file: single local lead mode."""
    path = tmp_path / "empty.toml"
    path.write_text("# no users\n", encoding="utf-8")
    monkeypatch.setenv("QUALITY_USERS_FILE", str(path))
    return path


# -- password hashes ------------------------------------------------------------------------------
def test_hash_and_verify_round_trip_and_wrong_password():
    stored = hash_password("correct horse battery")
    assert stored.startswith("scrypt$16384$8$1$")
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterY", stored)
    assert not verify_password("", stored)


def test_salts_differ_for_the_same_password():
    a, b = hash_password("same-password"), hash_password("same-password")
    assert a != b
    assert a.split("$")[4] != b.split("$")[4]
    assert verify_password("same-password", a) and verify_password("same-password", b)


def test_unicode_password():
    stored = hash_password("密码-пароль-🔑")
    assert verify_password("密码-пароль-🔑", stored) and not verify_password("密码-пароль", stored)


def _tamper(stored: str, index: int) -> str:
    parts = stored.split("$")
    raw = bytearray(base64.b64decode(parts[index]))
    raw[0] ^= 0x01
    parts[index] = base64.b64encode(bytes(raw)).decode()
    return "$".join(parts)


def test_tampered_hash_fails():
    stored = hash_password("secret-pass")
    assert not verify_password("secret-pass", _tamper(stored, 5))          # hash bytes
    assert not verify_password("secret-pass", _tamper(stored, 4))          # salt
    assert not verify_password("secret-pass", stored.replace("$16384$", "$8192$", 1))  # cost
    assert not verify_password("secret-pass", stored.replace("$8$1$", "$8$2$", 1))
    for bad in ["", "secret-pass", "bcrypt$16384$8$1$a$b", stored[:-8], stored + "$x",
                "scrypt$16383$8$1$" + "$".join(stored.split("$")[4:]),    # n not a power of 2
                "scrypt$" + str(2 ** 30) + "$8$1$" + "$".join(stored.split("$")[4:]),  # absurd cost
                "scrypt$16384$8$1$!!notb64!!$" + stored.split("$")[5]]:
        assert not verify_password("secret-pass", bad), bad


def test_empty_password_cannot_be_hashed():
    with pytest.raises(ValueError):
        hash_password("")


# -- the users file -------------------------------------------------------------------------------
def test_load_users(team):
    users = load_users()
    assert {n: u.role for n, u in users.items()} == {"alice": "lead", "rita": "reviewer", "sam": "stakeholder"}
    assert isinstance(users["alice"], User) and verify_password("pw-alice-123", users["alice"].password_hash)
    assert load_users(team) == users


def test_default_file_absent_means_no_users(tmp_path, monkeypatch):
    monkeypatch.delenv("QUALITY_USERS_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
    assert auth.users_file() == auth.DEFAULT_USERS_FILE
    assert load_users() == {}
    assert role_of("anyone") == "lead"


def test_explicit_missing_file_is_an_error_not_local_mode(tmp_path, monkeypatch):
    monkeypatch.setenv("QUALITY_USERS_FILE", str(tmp_path / "typo.toml"))
    with pytest.raises(AuthConfigError, match="typo.toml does not exist"):
        load_users()
    with pytest.raises(AuthConfigError):
        role_of("alice")


def test_other_secrets_are_ignored_and_an_empty_users_table_is_local_mode(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('api_key = "x"\n[database]\nurl = "y"\n[users]\n', encoding="utf-8")
    assert load_users(path) == {}


@pytest.mark.parametrize("text, message", [
    ('[users.alice\nrole = "lead"', "not valid TOML"),
    ('users = "alice"\n', "'users' must be a table"),
    ('[users]\nalice = "lead"\n', "must be a table with role and password_hash"),
    ('[users.alice]\nrole = "admin"\npassword_hash = "{h}"\n', "role must be one of lead, reviewer, stakeholder, got 'admin'"),
    ('[users.alice]\npassword_hash = "{h}"\n', "role must be one of"),
    ('[users.alice]\nrole = "lead"\n', "has no password_hash"),
    ('[users.alice]\nrole = "lead"\npassword_hash = "hunter2"\n', "not a valid scrypt hash"),
    ('[users.alice]\nrole = "lead"\npassword = "hunter2"\npassword_hash = "{h}"\n', "plain-text 'password'"),
    ('[users.cli]\nrole = "stakeholder"\npassword_hash = "{h}"\n', "reserved for system actors"),
    ('[users."system:x"]\nrole = "lead"\npassword_hash = "{h}"\n', "reserved for system actors"),
    ('[users." bob"]\nrole = "lead"\npassword_hash = "{h}"\n', "invalid user name"),
])
def test_users_file_errors_are_clear(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text.replace("{h}", hash_password("whatever-1")), encoding="utf-8")
    with pytest.raises(AuthConfigError) as err:
        load_users(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_changes_to_the_file_are_picked_up(tmp_path):
    path = tmp_path / "u.toml"
    path.write_text(users_toml(sam="stakeholder"), encoding="utf-8")
    assert role_of("sam", load_users(path)) == "stakeholder"
    auth.save_user("sam", "reviewer", "new-password-1", path)
    assert role_of("sam", load_users(path)) == "reviewer"


# -- authentication and roles -----------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _fresh_login_throttle(monkeypatch):
    """Each test starts with nobody locked out (the server's throttle is process state)."""
    monkeypatch.setattr(auth, "LOGIN_THROTTLE", auth.LoginThrottle())


def test_authenticate(team):
    users = load_users()
    assert authenticate("rita", "pw-rita-123", users) == users["rita"]
    assert authenticate(" rita ", "pw-rita-123", users) == users["rita"]
    assert authenticate("rita", "pw-sam-123", users) is None
    assert authenticate("nobody", "pw-rita-123", users) is None
    assert authenticate("", "", users) is None


def test_role_of_without_users_everyone_is_lead(no_users):
    assert load_users() == {}
    for actor in ["local-lead", "sam", "anyone at all", ""]:
        assert role_of(actor) == "lead"
        require_write(actor)
    assert role_of("cli") == "system"


def test_role_of_with_users(team):
    assert [role_of(a) for a in ["alice", "rita", "sam", "mallory", ""]] == \
        ["lead", "reviewer", "stakeholder", "none", "none"]
    for system in ["cli", "demo-loader", "system:queue-rules"]:
        assert role_of(system) == "system"


@pytest.mark.parametrize("actor, allowed", [("alice", True), ("rita", True), ("sam", False), ("mallory", False),
                                            ("", False), ("cli", True), ("demo-loader", True),
                                            ("system:nightly", True)])
def test_require_write_for_each_role(team, actor, allowed):
    assert may_write(actor) is allowed
    if allowed:
        require_write(actor)
    else:
        with pytest.raises(PermissionDenied) as err:
            require_write(actor)
        if actor == "sam":
            assert str(err.value) == "sam (stakeholder) may not change data"
        else:
            assert "not a configured user" in str(err.value)


def test_system_actors_do_not_need_a_readable_users_file(tmp_path, monkeypatch):
    bad = tmp_path / "broken.toml"
    bad.write_text("[users\n", encoding="utf-8")
    monkeypatch.setenv("QUALITY_USERS_FILE", str(bad))
    require_write("cli")
    with pytest.raises(AuthConfigError):
        require_write("alice")  # fail closed: an unusable file lets no person write


# -- the CLI ----------------------------------------------------------------------------------------
def test_cli_add_user_prompts_twice_and_keeps_other_entries(tmp_path, monkeypatch, capsys):
    path = tmp_path / ".streamlit" / "secrets.toml"
    path.parent.mkdir()
    path.write_text('# my secrets\napi_key = "k"\n\n[users.sam]\nrole = "stakeholder"\n'
                    f'password_hash = "{hash_password("sam-password")}"\n\n[other]\nx = 1\n', encoding="utf-8")
    answers = iter(["rita-password", "rita-password"])
    monkeypatch.setattr(auth, "_has_terminal", lambda: True)
    monkeypatch.setattr(auth.getpass, "getpass", lambda prompt="": next(answers))
    assert auth.main(["add-user", 'rita "the reviewer"', "--role", "reviewer", "--file", str(path)]) == 0
    assert "saved user" in capsys.readouterr().out
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# my secrets\n")
    data = tomllib.loads(text)
    assert data["api_key"] == "k" and data["other"] == {"x": 1}
    users = load_users(path)
    assert users['rita "the reviewer"'].role == "reviewer"
    assert authenticate('rita "the reviewer"', "rita-password", users)
    assert authenticate("sam", "sam-password", users)
    assert (path.stat().st_mode & 0o777) == 0o600

    # Updating a user replaces its section (role and password), nothing else.
    answers = iter(["sam-new-password", "sam-new-password"])
    assert auth.main(["add-user", "sam", "--role", "lead", "--file", str(path)]) == 0
    users = load_users(path)
    assert users["sam"].role == "lead" and authenticate("sam", "sam-new-password", users)
    assert not authenticate("sam", "sam-password", users)
    assert tomllib.loads(path.read_text(encoding="utf-8"))["other"] == {"x": 1}
    assert path.read_text(encoding="utf-8").count("[users.") == 2


def test_cli_add_user_refuses_mismatch_short_and_reserved(tmp_path, monkeypatch, capsys):
    path = tmp_path / "u.toml"
    answers = iter(["first-password", "other-password"])
    monkeypatch.setattr(auth, "_has_terminal", lambda: True)
    monkeypatch.setattr(auth.getpass, "getpass", lambda prompt="": next(answers))
    assert auth.main(["add-user", "rita", "--role", "reviewer", "--file", str(path)]) == 2
    assert "do not match" in capsys.readouterr().err
    answers = iter(["short", "short"])
    assert auth.main(["add-user", "rita", "--role", "reviewer", "--file", str(path)]) == 2
    assert "at least 8" in capsys.readouterr().err
    assert auth.main(["add-user", "cli", "--role", "lead", "--file", str(path)]) == 2
    assert "reserved" in capsys.readouterr().err
    assert not path.exists()


def test_cli_uses_env_file_password_stdin_hash_and_list(tmp_path, monkeypatch, capsys):
    path = tmp_path / "env-users.toml"
    monkeypatch.setenv("QUALITY_USERS_FILE", str(path))
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("a-long-password\n"))
    assert auth.main(["add-user", "alice", "--role", "lead", "--password-stdin"]) == 0
    assert load_users()["alice"].role == "lead"
    capsys.readouterr()
    assert auth.main(["list"]) == 0
    assert capsys.readouterr().out.strip() == "alice\tlead"
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("hash-me-please\n"))
    assert auth.main(["hash", "--password-stdin"]) == 0
    printed = capsys.readouterr().out.strip()
    assert verify_password("hash-me-please", printed)


def test_cli_add_user_without_a_terminal_says_to_use_password_stdin(tmp_path, monkeypatch, capsys):
    path = tmp_path / "u.toml"
    monkeypatch.setattr(auth, "_has_terminal", lambda: False)
    monkeypatch.setattr(auth.getpass, "getpass", lambda prompt="": pytest.fail("must not prompt"))
    assert auth.main(["add-user", "rita", "--role", "reviewer", "--file", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: no terminal") and "--password-stdin" in err
    assert not path.exists()


def test_cli_add_user_in_a_real_process_without_a_terminal(tmp_path):
    """As in a script or CI job: no controlling terminal, so no prompt and no traceback."""
    import subprocess
    import sys

    path = tmp_path / "u.toml"
    base = [sys.executable, "-m", "core.auth", "add-user", "rita", "--role", "reviewer", "--file", str(path)]
    kw = dict(cwd=auth.Path(auth.__file__).resolve().parents[1], capture_output=True, text=True, timeout=60,
              start_new_session=True)  # a new session has no controlling terminal (/dev/tty)
    bare = subprocess.run(base, stdin=subprocess.DEVNULL, **kw)
    assert bare.returncode == 2, bare
    assert bare.stderr.count("\n") == 1 and "--password-stdin" in bare.stderr and "Traceback" not in bare.stderr
    piped = subprocess.run([*base, "--password-stdin"], input="rita-password-1\n", **kw)
    assert piped.returncode == 0, piped
    assert authenticate("rita", "rita-password-1", load_users(path), throttle=auth.LoginThrottle())


def test_upsert_refuses_an_unusual_layout_instead_of_corrupting(tmp_path):
    text = f'[users]\nsam = {{ role = "stakeholder", password_hash = "{hash_password("x-password")}" }}\n'
    with pytest.raises(AuthConfigError, match="add this section by hand"):
        auth.upsert_user_text(text, "sam", "lead", hash_password("y-password"))


# -- enforcement in core: a stakeholder's write raises and changes nothing ---------------------------
@pytest.fixture
def filled(store, tmp_path, team):
    """A store with one dataset, predictions, an open queue and a review (written by system actors)."""
    from core.ingest import import_file
    from core.review import save_review

    rows = []
    for i in range(12):
        for ann, lab in [("a1", "cancel"), ("a2", "refund" if i % 3 else "cancel")]:
            rows.append({"id": f"s{i:02d}", "text": f"订单 {i}", "annotator": ann, "label": lab,
                         "prediction": "cancel", "pred_confidence": 0.4 + i / 40})
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    import_file(store, path, "d", labels=LABELS, pred_round=1, actor="cli")
    store.enqueue("d", ["s01", "s02", "s03"], "manual", "system:test")
    save_review(store, "d", "s06", "refund", "rita", "seed", 0)
    return store


_TABLES = ["datasets", "samples", "annotations", "predictions", "reviews", "audit_log", "imports",
           "import_errors", "review_queue", "imported_round_metrics"]


def snapshot(store) -> dict[str, pl.DataFrame]:
    out = {}
    for table in _TABLES:
        df = store.query_df(f"SELECT * FROM {table}")
        out[table] = df.sort(df.columns) if df.height else df
    return out


def assert_unchanged(before, after):
    for table in _TABLES:
        assert before[table].equals(after[table]), f"{table} changed"


def _writes(store, tmp_path):
    """Every write function of core, each as actor -> call."""
    from core import privacy
    from core.export import export_gold
    from core.ingest import import_file
    from core.review import save_review, save_reviews_bulk, undo_review

    entry = store.queue("d").row(0, named=True)["entry_id"]
    extra = tmp_path / "more.jsonl"
    extra.write_text(json.dumps({"id": "new1", "text": "new", "annotator": "a1", "label": "other"}) + "\n",
                     encoding="utf-8")
    metrics = pl.DataFrame({"round": [1], "n_labeled": [100], "metric": ["accuracy"], "value": [0.8]})
    empty = pl.DataFrame(schema={"sample_id": pl.Utf8})
    return {
        "save_review": lambda a: save_review(store, "d", "s00", "refund", a, "r", 0),
        "save_reviews_bulk": lambda a: save_reviews_bulk(
            store, "d", [{"sample_id": "s00", "new_label": "other", "base_version": 0}], a, "r"),
        "undo_review": lambda a: undo_review(store, "d", "s06", a, 1),
        "import_file": lambda a: import_file(store, extra, "d", actor=a),
        "write_import": lambda a: store.write_import(
            dataset="d2", labels=LABELS, file="x", file_sha256="0" * 64, fmt="jsonl", rows_total=0,
            samples=empty, annotations=empty, predictions=empty, errors=empty, actor=a),
        "enqueue": lambda a: store.enqueue("d", ["s07"], "manual", a),
        "set_excluded": lambda a: store.set_excluded("d", ["s08"], True, a),
        "set_dataset_setting": lambda a: store.set_dataset_setting("d", "confidence_threshold", 0.5, a),
        "save_imported_round_metrics": lambda a: store.save_imported_round_metrics("d", metrics, a),
        "set_queue_status": lambda a: store.set_queue_status(entry, "skipped", a),
        "claim_queue_entry": lambda a: store.claim_queue_entry("d", a, 600),
        "claim_queue_entries": lambda a: store.claim_queue_entries("d", a, 2, 600),
        "release_claims": lambda a: store.release_claims("d", store.queue("d")["entry_id"].to_list(), a),
        "reopen_queue_entry": lambda a: store.reopen_queue_entry(store.queue("d").sort("entry_id")
                                                                 .row(-1, named=True)["entry_id"], a),
        "reveal_pii": lambda a: privacy.reveal(store, a, "d", "test"),
        "export_gold_raw": lambda a: export_gold(store, "d", tmp_path / f"raw-{a}.jsonl", mask_pii=False, actor=a),
    }


WRITES = ["save_review", "save_reviews_bulk", "undo_review", "import_file", "write_import", "enqueue",
          "set_excluded", "set_dataset_setting", "save_imported_round_metrics", "set_queue_status",
          "claim_queue_entry", "claim_queue_entries", "release_claims", "reopen_queue_entry", "reveal_pii",
          "export_gold_raw"]


def _prepare(store, write: str, actor: str) -> None:
    """Put the queue in the state a write undoes, for ``actor``, before the snapshot (written directly:
    the actor may not be allowed to make that state through core)."""
    if write not in ("release_claims", "reopen_queue_entry"):
        return
    status = "claimed" if write == "release_claims" else "skipped"
    entry = store.queue("d").sort("entry_id").row(-1, named=True)["entry_id"]
    with store.transaction() as cur:
        cur.execute("UPDATE review_queue SET status = ?, claimed_by = ?, claimed_at = now() WHERE entry_id = ?",
                    [status, actor, entry])


@pytest.mark.parametrize("write", WRITES)
@pytest.mark.parametrize("actor, what", [("sam", "sam (stakeholder) may not change data"),
                                         ("mallory", "mallory (not a configured user) may not change data")])
def test_a_read_only_actor_cannot_write_and_nothing_changes(filled, tmp_path, write, actor, what):
    _prepare(filled, write, actor)
    before = snapshot(filled)
    with pytest.raises(PermissionDenied) as err:
        _writes(filled, tmp_path)[write](actor)
    assert str(err.value) == what
    assert_unchanged(before, snapshot(filled))


#: The writes a reviewer may make; every other write is a team lead's (core.roles.ALLOWED).
REVIEWER_WRITES = {"save_review", "save_reviews_bulk", "undo_review", "set_queue_status", "claim_queue_entry",
                   "claim_queue_entries", "release_claims", "reopen_queue_entry"}


@pytest.mark.parametrize("write", [w for w in WRITES if w != "write_import"])
@pytest.mark.parametrize("actor", ["alice", "rita"])
def test_leads_and_reviewers_can_write_what_their_role_allows(filled, tmp_path, write, actor):
    _prepare(filled, write, actor)
    before = snapshot(filled)
    if actor == "rita" and write not in REVIEWER_WRITES:
        with pytest.raises(PermissionDenied) as err:
            _writes(filled, tmp_path)[write](actor)
        assert str(err.value).startswith("rita (reviewer) may not ") and "(team leads only)" in str(err.value)
        assert_unchanged(before, snapshot(filled))
        return
    _writes(filled, tmp_path)[write](actor)
    after = snapshot(filled)
    assert any(not before[t].equals(after[t]) for t in _TABLES)
    if write not in ("claim_queue_entry", "claim_queue_entries"):  # claims are not audited
        assert actor in after["audit_log"]["actor"].to_list()


def test_the_queue_module_and_quality_actions_are_refused_too(filled):
    """Helpers that write through the store (queue rules, data-quality actions) inherit the rule."""
    from core import queue as q

    before = snapshot(filled)
    with pytest.raises(PermissionDenied):
        q.queue_low_confidence(filled, "d", "sam", threshold=0.9)
    with pytest.raises(PermissionDenied):
        q.set_confidence_threshold(filled, "d", 0.5, "sam")
    assert_unchanged(before, snapshot(filled))


# -- login throttling -------------------------------------------------------------------------------
class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


def test_five_failures_lock_the_name_for_a_minute_even_with_the_right_password(team, clock):
    users = load_users()
    throttle = auth.LoginThrottle(clock=clock)
    locked: list[str] = []
    for attempt in range(5):
        assert authenticate("rita", f"wrong-{attempt}", users, throttle=throttle, on_lockout=locked.append) is None
        assert locked == ([] if attempt < 4 else ["rita"])
    assert throttle.is_locked("rita")
    assert authenticate("rita", "pw-rita-123", users, throttle=throttle, on_lockout=locked.append) is None
    clock.now += 59.9
    assert authenticate("rita", "pw-rita-123", users, throttle=throttle) is None
    assert locked == ["rita"]  # reported once, when the lockout starts
    # other names are not affected
    assert authenticate("alice", "pw-alice-123", users, throttle=throttle) == users["alice"]
    clock.now += 0.2
    assert not throttle.is_locked("rita")
    assert authenticate("rita", "pw-rita-123", users, throttle=throttle) == users["rita"]


def test_a_success_resets_the_count_and_a_lockout_ends_with_a_fresh_count(team, clock):
    users = load_users()
    throttle = auth.LoginThrottle(clock=clock)
    for _round in range(3):  # 4 failures then a success, three times: never locked
        for _ in range(4):
            assert authenticate("rita", "wrong", users, throttle=throttle) is None
        assert authenticate("rita", "pw-rita-123", users, throttle=throttle) == users["rita"]
    for _ in range(5):
        authenticate("rita", "wrong", users, throttle=throttle)
    clock.now += auth.LOCKOUT_SECONDS
    for _ in range(4):  # after the lockout: five more tries before the next one
        assert authenticate("rita", "wrong", users, throttle=throttle) is None
    assert not throttle.is_locked("rita")
    assert authenticate("rita", "pw-rita-123", users, throttle=throttle) == users["rita"]


def test_unknown_names_lock_too_and_names_are_stripped(team, clock):
    """A lockout must not tell which names exist; " rita " is rita."""
    users = load_users()
    throttle = auth.LoginThrottle(clock=clock)
    for _ in range(5):
        authenticate("mallory", "guess", users, throttle=throttle)
        authenticate(" rita ", "guess", users, throttle=throttle)
    assert throttle.is_locked("mallory") and throttle.is_locked("rita")


def test_every_attempt_costs_one_password_check(team, clock, monkeypatch):
    """Locked, unknown, wrong or right: one scrypt verification each (timing tells nothing)."""
    users = load_users()
    throttle = auth.LoginThrottle(clock=clock)
    calls: list[str] = []
    real = auth.verify_password
    monkeypatch.setattr(auth, "verify_password", lambda pw, stored: calls.append(stored) or real(pw, stored))
    attempts = [("rita", "wrong")] * 5 + [("rita", "pw-rita-123"), ("nobody", "x"), ("alice", "pw-alice-123")]
    for name, password in attempts:
        authenticate(name, password, users, throttle=throttle)
    assert len(calls) == len(attempts)
    assert calls[5] == auth._dummy_hash()  # the locked attempt checks the dummy hash, not rita's


def test_parallel_guesses_cannot_slip_past_the_limit(clock):
    """Attempts are counted when they start, under the lock: 40 threads get exactly 5 tries."""
    import threading

    throttle = auth.LoginThrottle(clock=clock)
    barrier = threading.Barrier(40)
    allowed: list[bool] = []

    def attempt() -> None:
        barrier.wait()
        allowed.append(throttle.begin("rita"))

    threads = [threading.Thread(target=attempt) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(True) == 5
    assert sum(throttle.end("rita", False) for _ in range(5)) == 1  # one lockout starts
    assert throttle.is_locked("rita")


def test_the_throttle_remembers_a_bounded_number_of_names(clock):
    throttle = auth.LoginThrottle(clock=clock, max_names=3)
    for name in ["a", "b", "c", "d", "e"]:
        assert throttle.begin(name)
        throttle.end(name, False)
    assert len(throttle._failures) == 3


def test_a_lockout_is_audited_by_system_auth(team, store, clock):
    from functools import partial

    users = load_users()
    throttle = auth.LoginThrottle(clock=clock)
    for _ in range(5):
        authenticate("rita", "wrong", users, throttle=throttle, on_lockout=partial(auth.audit_lockout, store))
    log = store.audit_log(action="auth.lockout")
    assert log.height == 1
    row = log.row(0, named=True)
    assert row["actor"] == "system:auth" and row["new_value"] == "rita"
    assert json.loads(row["detail"]) == {"name": "rita", "failures": 5, "locked_seconds": 60.0}
    # a person cannot write such a row
    with pytest.raises(PermissionDenied):
        store.audit("alice", "auth.lockout", new_value="rita")


# -- session tokens (core.sessions) -----------------------------------------------------------------
SECRET = b"s" * 32
NOW = 1_800_000_000.0


def test_a_session_token_round_trips_and_is_cookie_safe(team):
    from core import sessions

    users = load_users()
    token = sessions.sign(users["rita"], SECRET, NOW)
    assert re.fullmatch(r"v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", token)
    assert sessions.verify(token, users, SECRET, NOW + 1) == users["rita"]
    assert sessions.expiry(token) == int(NOW + sessions.SESSION_SECONDS)
    assert "pw-rita" not in token and "scrypt" not in base64.urlsafe_b64decode(token.split(".")[1] + "==").decode()


def test_a_session_token_expires(team):
    from core import sessions

    users = load_users()
    token = sessions.sign(users["rita"], SECRET, NOW, lifetime=60)
    assert sessions.verify(token, users, SECRET, NOW + 59) == users["rita"]
    for later in (NOW + 60, NOW + 10 ** 6):
        with pytest.raises(sessions.InvalidSession, match="expired"):
            sessions.verify(token, users, SECRET, later)


def _reencode(token: str, **changes) -> str:
    version, payload, mac = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    new = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{version}.{new}.{mac}"


@pytest.mark.parametrize("change", [{"r": "lead"}, {"exp": int(NOW) + 10 ** 8}, {"u": "alice"}])
def test_a_tampered_session_token_is_refused(team, change):
    from core import sessions

    users = load_users()
    token = sessions.sign(users["rita"], SECRET, NOW)
    with pytest.raises(sessions.InvalidSession, match="bad signature"):
        sessions.verify(_reencode(token, **change), users, SECRET, NOW)
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(sessions.InvalidSession, match="bad signature"):
        sessions.verify(flipped, users, SECRET, NOW)


@pytest.mark.parametrize("garbage", ["", "v1", "v1.a", "v2.a.b", "v1.!!!.???", "v1.e30.AAAA", "x" * 5000,
                                     None, 42, "v1." + base64.urlsafe_b64encode(b'{"u": 1}').decode() + ".AA"])
def test_garbage_is_not_a_session(team, garbage):
    from core import sessions

    with pytest.raises(sessions.InvalidSession):
        sessions.verify(garbage, load_users(), SECRET, NOW)


def test_a_token_signed_with_another_secret_is_refused(team):
    from core import sessions

    users = load_users()
    forged = sessions.sign(auth.User("rita", "lead", users["rita"].password_hash), b"guessed-secret" * 3, NOW)
    for token in (forged, sessions.sign(users["rita"], b"t" * 32, NOW)):
        with pytest.raises(sessions.InvalidSession, match="bad signature"):
            sessions.verify(token, users, SECRET, NOW)


def test_removing_a_user_or_changing_role_or_password_ends_their_sessions(team, team_text):
    from core import sessions

    users = load_users()
    token = sessions.sign(users["sam"], SECRET, NOW)
    removed = {k: v for k, v in users.items() if k != "sam"}
    with pytest.raises(sessions.InvalidSession, match="no longer configured"):
        sessions.verify(token, removed, SECRET, NOW)
    promoted = dict(users, sam=auth.User("sam", "lead", users["sam"].password_hash))
    with pytest.raises(sessions.InvalidSession, match="role of 'sam' changed from stakeholder to lead"):
        sessions.verify(token, promoted, SECRET, NOW)
    new_password = dict(users, sam=auth.User("sam", "stakeholder", hash_password("a-new-password")))
    with pytest.raises(sessions.InvalidSession, match="bad signature"):
        sessions.verify(token, new_password, SECRET, NOW)
    # and through the users file, as the app sees it
    auth.save_user("sam", "reviewer", "sam-password-2", team)
    with pytest.raises(sessions.InvalidSession):
        sessions.verify(token, load_users(), SECRET, NOW)


def test_the_session_secret_comes_from_env_then_users_file_then_the_process(tmp_path, monkeypatch, team_text):
    from core import sessions

    monkeypatch.delenv("QUALITY_SECRET", raising=False)
    path = tmp_path / "users.toml"
    path.write_text(team_text, encoding="utf-8")
    monkeypatch.setenv("QUALITY_USERS_FILE", str(path))
    fallback = sessions.session_secret()
    assert fallback.source == "process" and not fallback.survives_restart
    assert sessions.session_secret().key == fallback.key  # the same for the whole process

    path.write_text(f'secret = "{"f" * 40}"\n' + team_text, encoding="utf-8")
    assert sessions.session_secret() == sessions.SessionSecret(b"f" * 40, "users file")
    assert load_users(path).keys() == {"alice", "rita", "sam"}

    monkeypatch.setenv("QUALITY_SECRET", "e" * 32)
    assert sessions.session_secret() == sessions.SessionSecret(b"e" * 32, "QUALITY_SECRET")
    monkeypatch.setenv("QUALITY_SECRET", "short")
    with pytest.raises(AuthConfigError, match="QUALITY_SECRET must have at least 32"):
        sessions.session_secret()

    monkeypatch.delenv("QUALITY_SECRET")
    path.write_text('secret = "short"\n' + team_text, encoding="utf-8")
    with pytest.raises(AuthConfigError, match="'secret' must be a string of at least 32"):
        load_users(path)


def test_a_revoked_token_is_remembered_until_it_expires(team):
    from core import sessions

    clock = FakeClock(NOW)
    revoked = sessions.Revocations(clock=clock)
    users = load_users()
    token = sessions.sign(users["rita"], SECRET, NOW, lifetime=100)
    other = sessions.sign(users["sam"], SECRET, NOW, lifetime=100)
    revoked.revoke(token)
    revoked.revoke("not a token")  # ignored
    assert revoked.is_revoked(token) and not revoked.is_revoked(other)
    clock.now += 100
    assert not revoked.is_revoked(token)
    revoked.revoke(other)
    assert len(revoked._until) == 1  # the expired entry was dropped
