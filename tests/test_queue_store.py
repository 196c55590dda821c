from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from headshots.errors import NotFound
from headshots.queue.store import BlobStore, LocalBlobStore, RedisBlobStore


@pytest.fixture(params=["redis", "local"])
def store(request: pytest.FixtureRequest, redis_client: Any, tmp_path: Path) -> BlobStore:
    if request.param == "redis":
        return RedisBlobStore(redis_client)
    return LocalBlobStore(redis_client, tmp_path / "blobs")


async def test_put_get_list(store: BlobStore) -> None:
    await store.put("tg:1", "uploads/u1/01.jpg", b"one", 60)
    await store.put("tg:1", "uploads/u1/02.jpg", b"two", 60)
    await store.put("tg:1", "jobs/j/results/01.png", b"r", 60)
    await store.put("tg:2", "uploads/u1/01.jpg", b"other", 60)
    assert await store.get("tg:1", "uploads/u1/02.jpg") == b"two"
    assert await store.list("tg:1", "uploads/u1/") == ["uploads/u1/01.jpg", "uploads/u1/02.jpg"]
    assert await store.get("tg:2", "uploads/u1/01.jpg") == b"other"
    with pytest.raises(NotFound):
        await store.get("tg:1", "uploads/u1/03.jpg")


async def test_ttl_is_enforced(store: BlobStore) -> None:
    await store.put("tg:1", "uploads/u/01.jpg", b"x", 1)
    await store.put("tg:1", "jobs/j/lora.safetensors", b"y", 60)
    await asyncio.sleep(1.3)
    if isinstance(store, LocalBlobStore):
        assert await store.sweep() == 1
    with pytest.raises(NotFound):
        await store.get("tg:1", "uploads/u/01.jpg")
    assert await store.list("tg:1", "") == ["jobs/j/lora.safetensors"]


async def test_expire_prefix_and_delete_user(store: BlobStore) -> None:
    for i in range(3):
        await store.put("dc:9", f"uploads/a/{i:02d}.jpg", b"x", 3600)
    assert await store.expire("dc:9", "uploads/a/", 1) == 3
    await asyncio.sleep(1.3)
    assert await store.list("dc:9", "uploads/") == []
    await store.put("dc:9", "jobs/j/x.png", b"x", 60)
    assert await store.delete_user("dc:9") >= 1
    assert await store.list("dc:9", "") == []


async def test_paths_cannot_escape(store: BlobStore) -> None:
    for bad in ("../etc/passwd", "/abs", "a/../../b", ""):
        with pytest.raises(ValueError):
            await store.put("tg:1", bad, b"x", 60)


async def test_delete_one_blob(store: BlobStore) -> None:
    await store.put("tg:5", "uploads/u/01.jpg", b"a", 60)
    await store.put("tg:5", "uploads/u/02.jpg", b"b", 60)
    assert await store.delete("tg:5", "uploads/u/01.jpg") is True
    assert await store.delete("tg:5", "uploads/u/01.jpg") is False
    assert await store.list("tg:5", "uploads/") == ["uploads/u/02.jpg"]
    with pytest.raises(NotFound):
        await store.get("tg:5", "uploads/u/01.jpg")
