"""/healthz reports the database, Redis and live workers."""
import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def test_healthz_counts_the_running_worker(client, celery_worker_thread):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["database"] == "ok"
    assert body["redis"] == "ok"
    assert body["celery_workers"] >= 1


def test_healthz_is_503_when_the_database_is_down(client, settings, monkeypatch):
    from coursesite import views

    monkeypatch.setattr(views, "_database_state", lambda: "error: OperationalError")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"].startswith("error")
