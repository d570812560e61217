"""No container engine runs here, so the compose topology is checked by reading it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def override():
    return yaml.safe_load((ROOT / "docker-compose.override.yml").read_text())


def _bytes(limit: str) -> int:
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    return int(limit[:-1]) * units[limit[-1].lower()]


def test_services_are_the_proposals(compose):
    assert set(compose["services"]) == {"redis", "traefik", "gateway", "worker-heavy", "worker-light", "scheduler"}


def test_redis_has_a_volume_a_healthcheck_and_256m(compose):
    redis = compose["services"]["redis"]
    assert _bytes(redis["mem_limit"]) == 256 * 1024**2
    assert any(v.startswith("redis_data:/data") for v in redis["volumes"])
    assert "redis_data" in compose["volumes"]
    assert "redis-cli" in redis["healthcheck"]["test"] and "ping" in redis["healthcheck"]["test"]
    conf = (ROOT / "infra" / "redis.conf").read_text()
    assert "appendonly yes" in conf and "maxmemory-policy noeviction" in conf


def test_memory_limits_and_queues(compose):
    services = compose["services"]
    assert _bytes(services["gateway"]["mem_limit"]) == 1024**3
    assert _bytes(services["worker-heavy"]["mem_limit"]) == 6 * 1024**3
    assert _bytes(services["worker-light"]["mem_limit"]) == 1024**3
    assert services["worker-heavy"]["command"] == ["python", "-m", "actors.worker", "--queue=heavy"]
    assert services["worker-light"]["command"] == ["python", "-m", "actors.worker", "--queue=light"]
    assert services["worker-light"]["deploy"]["replicas"] == 2
    assert "gunicorn" in services["gateway"]["command"]


def test_one_image_for_gateway_and_workers(compose):
    services = compose["services"]
    images = {services[name]["image"] for name in ("gateway", "worker-heavy", "worker-light")}
    assert len(images) == 1
    assert services["gateway"]["build"]["dockerfile"] == "infra/Dockerfile"
    assert (ROOT / "infra" / "Dockerfile").exists()


def test_scheduler_runs_periodiq_once(compose):
    scheduler = compose["services"]["scheduler"]
    assert scheduler["command"] == ["python", "-m", "actors.schedule"]
    assert scheduler["deploy"]["replicas"] == 1
    assert scheduler["image"] == compose["services"]["gateway"]["image"]


def test_every_app_service_finds_redis_and_waits_for_it(compose):
    for name in ("gateway", "worker-heavy", "worker-light", "scheduler"):
        service = compose["services"][name]
        assert service["environment"]["REDIS_URL"] == "redis://redis:6379/0"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["restart"] == "unless-stopped"


def test_scalable_services_have_no_fixed_host_port_or_name(compose, override):
    for name in ("worker-heavy", "worker-light", "gateway"):
        for config in (compose["services"][name], override["services"].get(name, {})):
            assert "container_name" not in config, name
            if name != "gateway":
                assert "ports" not in config, name
    assert "ports" not in compose["services"]["gateway"]  # only the dev override publishes it


def test_traefik_routes_to_the_gateway_without_sticky_sessions(compose):
    labels = compose["services"]["gateway"]["labels"]
    assert "traefik.enable=true" in labels
    assert not any("sticky" in label for label in labels)
    assert any("loadbalancer.server.port=8080" in label for label in labels)


def test_override_is_for_local_development(override):
    assert set(override["services"]) <= {"redis", "gateway", "worker-heavy", "worker-light", "traefik"}
    assert all(p.startswith("127.0.0.1:") for p in override["services"]["gateway"]["ports"])
