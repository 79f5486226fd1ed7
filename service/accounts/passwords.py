"""bcrypt hashing, always off the event loop.

bcrypt releases the GIL while it works, so a small dedicated pool runs hashes truly in parallel without
taking threads from the pool other blocking calls use; more threads than cores would only queue work
inside the kernel and stretch the event loop's latency.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

import bcrypt

_pool = ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1), thread_name_prefix="bcrypt")


def _prehash(password: str) -> bytes:
    # bcrypt reads at most 72 bytes (and bcrypt>=5 refuses more); a 128-character password can be
    # 512 UTF-8 bytes. A SHA-256 digest, base64'd to avoid NUL bytes, keeps every character significant.
    return base64.b64encode(hashlib.sha256(password.encode()).digest())


def hash_password_sync(password: str, rounds: int) -> str:
    return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds)).decode()


def verify_password_sync(password: str, hashed: str) -> bool:
    try:
        return bcrypt.checkpw(_prehash(password), hashed.encode())
    except ValueError:
        return False


async def hash_password(password: str, rounds: int) -> str:
    return await asyncio.get_running_loop().run_in_executor(_pool, hash_password_sync, password, rounds)


async def verify_password(password: str, hashed: str) -> bool:
    return await asyncio.get_running_loop().run_in_executor(_pool, verify_password_sync, password, hashed)
