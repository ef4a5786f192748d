"""core.executor: the local executor inline and on its process pool, and get_executor's choice of backend."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from core import executor_ray
from core.executor import ENV_RAY_ADDRESS, LocalExecutor, batches, get_executor

# The maps are module-level so the pool's spawned processes import them by name.


def square_and_drop_multiples_of_5(batch: pl.DataFrame) -> pl.DataFrame:
    """Output rows that depend on each input row alone: fewer rows than the input, and a new column."""
    return (batch.filter(pl.col("n") % 5 != 0)
            .select("n", (pl.col("n") * pl.col("n")).alias("square"), pl.col("text").str.len_chars().alias("chars")))


def two_rows_per_sample(batch: pl.DataFrame) -> pl.DataFrame:
    """More output rows than input rows (a sample may give several findings)."""
    return pl.concat([batch.select("n", pl.lit(0).alias("k")), batch.select("n", pl.lit(1).alias("k"))]).sort(
        "n", "k", maintain_order=True)


def fail_on_777(batch: pl.DataFrame) -> pl.DataFrame:
    if (batch["n"] == 777).any():
        raise ValueError("sample 777 is malformed")
    return batch.select("n")


def slow_and_marked(batch: pl.DataFrame) -> pl.DataFrame:
    """Leaves one marker file per batch in the directory the frame names, so a test can count the batches run."""
    marks = Path(batch["marks"][0])
    (marks / f"{batch['n'][0]:08d}").touch()
    time.sleep(0.2)
    return batch.select("n")


def frame_of(n: int, marks: Path | None = None) -> pl.DataFrame:
    frame = pl.DataFrame({"n": list(range(n)), "text": [("订单" if i % 2 else "order ") * (i % 7) for i in range(n)]},
                         schema={"n": pl.Int64, "text": pl.String})
    return frame.with_columns(pl.lit(str(marks)).alias("marks")) if marks is not None else frame


def pooled() -> LocalExecutor:
    return LocalExecutor(workers=2, pool_min_rows=10)


def test_batches_cut_in_order_and_reject_a_bad_size():
    parts = list(batches(frame_of(10), 4))
    assert [p["n"].to_list() for p in parts] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert list(batches(frame_of(0), 4)) == []
    with pytest.raises(ValueError, match="batch_rows must be at least 1"):
        list(batches(frame_of(3), 0))


@pytest.mark.parametrize("fn", [square_and_drop_multiples_of_5, two_rows_per_sample])
def test_inline_map_equals_the_function_on_the_whole_frame(fn):
    frame = frame_of(1_003)
    seen = []
    out = LocalExecutor(workers=1).map_batches(fn, frame, batch_rows=100, progress=lambda s, f: seen.append((s, f)),
                                               stage="squares")
    assert_frame_equal(out, fn(frame))
    assert len(seen) == 11 and seen[-1] == ("squares", 1.0)
    assert [f for _, f in seen] == sorted(f for _, f in seen)


def test_small_frames_run_inline_even_with_workers():
    calls = []

    def local_only(batch):  # not picklable: would fail on a pool
        calls.append(batch.height)
        return batch

    out = LocalExecutor(workers=2).map_batches(local_only, frame_of(500), batch_rows=100)
    assert out.height == 500 and calls == [100] * 5


def test_pool_keeps_input_order_and_reports_progress():
    frame = frame_of(2_000)
    seen = []
    out = pooled().map_batches(two_rows_per_sample, frame, batch_rows=150, progress=lambda s, f: seen.append(f))
    assert_frame_equal(out, two_rows_per_sample(frame))
    assert len(seen) == 14 and seen[-1] == 1.0 and seen == sorted(seen)


def test_empty_frame_gives_the_functions_schema():
    empty = frame_of(0)
    for executor in (LocalExecutor(workers=1), pooled()):
        out = executor.map_batches(square_and_drop_multiples_of_5, empty, batch_rows=10)
        assert out.height == 0
        assert out.schema == pl.Schema({"n": pl.Int64, "square": pl.Int64, "chars": pl.UInt32})


@pytest.mark.parametrize("executor", [LocalExecutor(workers=1), pooled()], ids=["inline", "pool"])
def test_an_exception_in_the_function_propagates_with_its_message(executor):
    with pytest.raises(ValueError, match="sample 777 is malformed"):
        executor.map_batches(fail_on_777, frame_of(1_000), batch_rows=100)


class Cancelled(Exception):
    pass


@pytest.mark.parametrize("executor", [LocalExecutor(workers=1), pooled()], ids=["inline", "pool"])
def test_a_progress_that_raises_stops_the_map(executor, tmp_path):
    frame = frame_of(600, tmp_path)
    reports = []

    def cancel_after_first(stage, fraction):
        reports.append(fraction)
        raise Cancelled("user pressed Cancel")

    with pytest.raises(Cancelled):
        executor.map_batches(slow_and_marked, frame, batch_rows=20, progress=cancel_after_first)
    assert len(reports) == 1
    # 30 batches: inline stops after the first; the pool cancels what it has not yet handed its 2 workers
    # (it hands each a couple ahead).
    assert len(list(tmp_path.iterdir())) <= (1 if executor.workers == 1 else 10)


def test_get_executor_is_local_without_a_ray_address(monkeypatch):
    monkeypatch.delenv(ENV_RAY_ADDRESS, raising=False)
    assert isinstance(get_executor(), LocalExecutor)
    monkeypatch.setenv(ENV_RAY_ADDRESS, "  ")
    assert isinstance(get_executor(), LocalExecutor)


@pytest.mark.parametrize("address", ["local", "auto", "head.example:6379", "10.0.0.5:6379"])
def test_get_executor_honours_the_ray_address(monkeypatch, address):
    monkeypatch.setenv(ENV_RAY_ADDRESS, address)
    executor = get_executor()
    assert isinstance(executor, executor_ray.RayExecutor)  # built without connecting: nothing is started here
    assert executor.address == address and executor.name == "ray"


@pytest.mark.parametrize("address", ["head-without-port", "head:port", "http://head:6379"])
def test_a_malformed_ray_address_is_an_error_naming_the_variable(monkeypatch, address):
    monkeypatch.setenv(ENV_RAY_ADDRESS, address)
    with pytest.raises(ValueError, match=f"{ENV_RAY_ADDRESS}='{address}': expected local, auto or HOST:PORT"):
        get_executor()


def test_a_ray_client_address_is_refused_with_the_reason(monkeypatch):
    monkeypatch.setenv(ENV_RAY_ADDRESS, "ray://head:10001")
    with pytest.raises(ValueError, match="Ray Data does not run through Ray Client"):
        get_executor()


def test_missing_ray_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(ENV_RAY_ADDRESS, "local")
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(executor_ray.RayExecutorError) as info:
        get_executor()
    assert ENV_RAY_ADDRESS in str(info.value) and "requirements-scale.txt" in str(info.value)


def test_an_unreachable_cluster_is_a_clear_error_at_once():
    import ray

    if ray.is_initialized():
        pytest.skip("this process is already connected to Ray: connect() would use that connection")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    with pytest.raises(executor_ray.RayExecutorError) as info:
        executor_ray.RayExecutor(f"127.0.0.1:{port}").map_batches(fail_on_777, frame_of(10))
    assert time.perf_counter() - t0 < executor_ray.CONNECT_TIMEOUT_S + 2
    assert f"{ENV_RAY_ADDRESS}='127.0.0.1:{port}'" in str(info.value) and "no Ray cluster answers" in str(info.value)
    assert not ray.is_initialized()


def worker_main_name(batch: pl.DataFrame) -> pl.DataFrame:
    """Which ``__main__`` the worker process runs under, and its pid, for each row."""
    main = sys.modules.get("__main__")
    return batch.select("n", pl.lit(getattr(main, "__file__", None) or "").alias("main_file"),
                        pl.lit(os.getpid()).alias("pid"))


def test_under_a_streamlit_script_main_the_pool_runs_without_re_running_the_script(monkeypatch, tmp_path):
    """Streamlit makes the app's script ``__main__`` (no loader): a spawned worker that re-ran it would run the
    whole app (found in a real server: the pool broke on the first map). The executor's workers start without the
    parent's main there, so the server's jobs use every core too."""
    import types

    from core import executor

    ran = tmp_path / "the-script-ran"
    app = tmp_path / "app.py"
    app.write_text(f"open({str(ran)!r}, 'w').close()\nraise SystemExit('a worker ran the app')\n", encoding="utf-8")
    script = types.ModuleType("__main__")
    script.__file__ = str(app)  # what Streamlit sets; __loader__ and __spec__ stay None
    monkeypatch.setitem(sys.modules, "__main__", script)
    assert not executor.spawn_safe()
    executor.shutdown_pools()  # fresh workers, spawned under this main
    try:
        frame = frame_of(300)
        out = pooled().map_batches(square_and_drop_multiples_of_5, frame, batch_rows=50)
        assert_frame_equal(out, square_and_drop_multiples_of_5(frame))
        where = pooled().map_batches(worker_main_name, frame, batch_rows=50)
        assert os.getpid() not in set(where["pid"].to_list())  # it did run on the pool
        assert set(where["main_file"].to_list()) <= {""}  # and no worker holds the app as its main
        assert not ran.exists()
    finally:
        executor.shutdown_pools()
    script.__loader__ = object()  # a script Python itself loaded (python app.py): guarded, the main may run
    assert executor.spawn_safe()

