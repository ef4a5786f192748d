"""Identity and roles: password hashes, the users file, role rules, the CLI, and enforcement in core."""

from __future__ import annotations

import base64
import json
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
    }


WRITES = ["save_review", "save_reviews_bulk", "undo_review", "import_file", "write_import", "enqueue",
          "set_excluded", "set_dataset_setting", "save_imported_round_metrics", "set_queue_status",
          "claim_queue_entry"]


@pytest.mark.parametrize("write", WRITES)
@pytest.mark.parametrize("actor, what", [("sam", "sam (stakeholder) may not change data"),
                                         ("mallory", "mallory (not a configured user) may not change data")])
def test_a_read_only_actor_cannot_write_and_nothing_changes(filled, tmp_path, write, actor, what):
    before = snapshot(filled)
    with pytest.raises(PermissionDenied) as err:
        _writes(filled, tmp_path)[write](actor)
    assert str(err.value) == what
    assert_unchanged(before, snapshot(filled))


#: The writes a reviewer may make; every other write is a team lead's (core.roles.ALLOWED).
REVIEWER_WRITES = {"save_review", "save_reviews_bulk", "undo_review", "set_queue_status", "claim_queue_entry"}


@pytest.mark.parametrize("write", [w for w in WRITES if w != "write_import"])
@pytest.mark.parametrize("actor", ["alice", "rita"])
def test_leads_and_reviewers_can_write_what_their_role_allows(filled, tmp_path, write, actor):
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
    if write not in ("claim_queue_entry",):
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
