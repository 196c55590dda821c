"""The shared store: selfies, LoRA weights and results, reachable from any host that reaches Redis.

Blobs are addressed by (user key, path); every blob has a TTL, so nothing a user sent outlives
its retention. Two backends:

- ``RedisBlobStore`` (default): each blob is a Redis string with a TTL. Nothing but Redis is
  shared between the chat hosts and GPU workers.
- ``LocalBlobStore``: files under a directory, for one machine; expiry times live in Redis and
  :meth:`LocalBlobStore.sweep` deletes what has expired.

Both keep a per-user index (a sorted set of path -> expiry) so listing never scans the keyspace.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Protocol

from redis.asyncio import Redis

from headshots.errors import NotFound
from headshots.queue import constants

logger = logging.getLogger(__name__)


def _check_path(path: str) -> str:
    # Paths come from our own code, but a user-influenced id must never escape its namespace.
    if not path or path.startswith("/") or ".." in path.split("/") or "\\" in path:
        raise ValueError(f"invalid store path {path!r}")
    return path


def _index_key(user_key: str) -> str:
    return f"{constants.user_prefix(user_key)}blobs"


class BlobStore(Protocol):
    async def put(self, user_key: str, path: str, data: bytes, ttl_s: int) -> None: ...

    async def get(self, user_key: str, path: str) -> bytes:
        """Raise :class:`NotFound` when the blob is absent or expired."""
        ...

    async def list(self, user_key: str, prefix: str) -> list[str]: ...

    async def expire(self, user_key: str, prefix: str, ttl_s: int) -> int:
        """Reset the TTL of every blob under ``prefix``; returns how many."""
        ...

    async def delete(self, user_key: str, path: str) -> bool:
        """Delete one blob now; returns whether it existed."""
        ...

    async def delete_user(self, user_key: str) -> int:
        """Delete every blob of the user; returns how many."""
        ...


class _IndexedStore:
    """The per-user index shared by both backends."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def _index_add(self, user_key: str, path: str, ttl_s: int) -> None:
        key = _index_key(user_key)
        expiry = time.time() + ttl_s
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {path: expiry})
            pipe.pttl(key)
            _, current_pttl = await pipe.execute()
        # The index lives as long as its longest-lived blob (EXPIRE GT needs Redis 7).
        if current_pttl < 0 or current_pttl < ttl_s * 1000:
            await self.redis.pexpire(key, ttl_s * 1000 + 1000)

    async def _index_list(self, user_key: str, prefix: str) -> list[str]:
        members = await self.redis.zrangebyscore(_index_key(user_key), time.time(), "+inf")
        paths = (m.decode() if isinstance(m, bytes) else str(m) for m in members)
        return sorted(p for p in paths if p.startswith(prefix))


class RedisBlobStore(_IndexedStore):
    """Blobs as Redis strings with TTLs."""

    @staticmethod
    def _key(user_key: str, path: str) -> str:
        return f"{constants.BLOB_PREFIX}{user_key}:{_check_path(path)}"

    async def put(self, user_key: str, path: str, data: bytes, ttl_s: int) -> None:
        await self.redis.set(self._key(user_key, path), data, ex=max(1, ttl_s))
        await self._index_add(user_key, path, ttl_s)

    async def get(self, user_key: str, path: str) -> bytes:
        data = await self.redis.get(self._key(user_key, path))
        if data is None:
            raise NotFound(f"{path} is no longer stored (expired or deleted)")
        return bytes(data)

    async def list(self, user_key: str, prefix: str) -> list[str]:
        paths = await self._index_list(user_key, prefix)
        if not paths:
            return []
        # The index names the blobs; a missing key means it was evicted or expired early.
        async with self.redis.pipeline(transaction=False) as pipe:
            for path in paths:
                pipe.exists(self._key(user_key, path))
            present = await pipe.execute()
        return [p for p, ok in zip(paths, present, strict=True) if ok]

    async def delete(self, user_key: str, path: str) -> bool:
        await self.redis.zrem(_index_key(user_key), path)
        return bool(await self.redis.delete(self._key(user_key, path)))

    async def expire(self, user_key: str, prefix: str, ttl_s: int) -> int:
        paths = await self._index_list(user_key, prefix)
        for path in paths:
            await self.redis.expire(self._key(user_key, path), max(1, ttl_s))
            await self._index_add(user_key, path, ttl_s)
        return len(paths)

    async def delete_user(self, user_key: str) -> int:
        deleted = 0
        pattern = f"{constants.BLOB_PREFIX}{user_key}:*"
        async for key in self.redis.scan_iter(match=pattern, count=500):
            deleted += int(await self.redis.delete(key))
        await self.redis.delete(_index_key(user_key))
        return deleted


class LocalBlobStore(_IndexedStore):
    """Blobs as files under ``root``; for a single machine (workers and bots share the disk)."""

    def __init__(self, redis: Redis, root: Path) -> None:
        super().__init__(redis)
        self.root = root

    def _file(self, user_key: str, path: str) -> Path:
        return self.root / user_key.replace(":", "_") / _check_path(path)

    async def put(self, user_key: str, path: str, data: bytes, ttl_s: int) -> None:
        target = self._file(user_key, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(target.suffix + ".part")
        tmp.write_bytes(data)
        tmp.replace(target)  # readers never see half a file
        await self.redis.zadd(
            constants.BLOB_EXPIRY_KEY, {f"{user_key}\n{path}": time.time() + ttl_s}
        )
        await self._index_add(user_key, path, ttl_s)

    async def get(self, user_key: str, path: str) -> bytes:
        score = await self.redis.zscore(constants.BLOB_EXPIRY_KEY, f"{user_key}\n{path}")
        target = self._file(user_key, path)
        if score is None or score < time.time() or not target.exists():
            raise NotFound(f"{path} is no longer stored (expired or deleted)")
        return target.read_bytes()

    async def list(self, user_key: str, prefix: str) -> list[str]:
        paths = await self._index_list(user_key, prefix)
        return [p for p in paths if self._file(user_key, p).exists()]

    async def delete(self, user_key: str, path: str) -> bool:
        await self.redis.zrem(_index_key(user_key), path)
        await self.redis.zrem(constants.BLOB_EXPIRY_KEY, f"{user_key}\n{path}")
        target = self._file(user_key, path)
        existed = target.exists()
        target.unlink(missing_ok=True)
        return existed

    async def expire(self, user_key: str, prefix: str, ttl_s: int) -> int:
        paths = await self._index_list(user_key, prefix)
        for path in paths:
            expiry = time.time() + ttl_s
            await self.redis.zadd(constants.BLOB_EXPIRY_KEY, {f"{user_key}\n{path}": expiry})
            await self._index_add(user_key, path, ttl_s)
        return len(paths)

    async def delete_user(self, user_key: str) -> int:
        folder = self.root / user_key.replace(":", "_")
        deleted = 0
        if folder.exists():
            for file in sorted(folder.rglob("*"), reverse=True):
                if file.is_file():
                    file.unlink()
                    deleted += 1
                else:
                    file.rmdir()
            folder.rmdir()
        members = await self.redis.zrange(constants.BLOB_EXPIRY_KEY, 0, -1)
        mine = [
            m
            for m in members
            if (m.decode() if isinstance(m, bytes) else m).startswith(f"{user_key}\n")
        ]
        if mine:
            await self.redis.zrem(constants.BLOB_EXPIRY_KEY, *mine)
        await self.redis.delete(_index_key(user_key))
        return deleted

    async def sweep(self) -> int:
        """Delete files whose TTL has passed; returns how many."""
        expired = await self.redis.zrangebyscore(constants.BLOB_EXPIRY_KEY, "-inf", time.time())
        for member in expired:
            name = member.decode() if isinstance(member, bytes) else str(member)
            user_key, _, path = name.partition("\n")
            self._file(user_key, path).unlink(missing_ok=True)
        if expired:
            await self.redis.zrem(constants.BLOB_EXPIRY_KEY, *expired)
        return len(expired)


def build_store(redis: Redis, backend: str, state_dir: Path) -> BlobStore:
    if backend == "local":
        return LocalBlobStore(redis, state_dir / "blobs")
    return RedisBlobStore(redis)
