from __future__ import annotations

from pathlib import Path

import redis

from headshots.queue.connections import redis_settings_from_url
from headshots.queue.embedded import EmbeddedRedis


def test_embedded_redis_persists_across_restarts(tmp_path: Path) -> None:
    data = tmp_path / "redis"
    with EmbeddedRedis(data) as server:
        client = redis.Redis.from_url(server.url)
        client.set("hs:survives", "yes")
        client.close()
    assert (data / "appendonly.aof").exists() or any(data.glob("appendonlydir/*"))
    first_port = server.port
    with EmbeddedRedis(data) as server:
        client = redis.Redis.from_url(server.url)
        assert client.get("hs:survives") == b"yes"
        client.close()
    # The port is recorded with the data: running processes find a restarted server again.
    assert server.port == first_port and (data / "port").read_text() == str(first_port)
    # Stopped: nothing listens any more.
    try:
        redis.Redis(port=server.port, socket_connect_timeout=0.3).ping()
        raise AssertionError("embedded Redis still running after stop")
    except redis.ConnectionError:
        pass


def test_sentinel_url() -> None:
    settings = redis_settings_from_url("redis+sentinel://s1:26379,s2:26380/mymaster/2")
    assert settings.sentinel and settings.sentinel_master == "mymaster"
    assert settings.host == [("s1", 26379), ("s2", 26380)] and settings.database == 2
    plain = redis_settings_from_url("redis://example:6380/3")
    assert plain.host == "example" and plain.port == 6380 and plain.database == 3
