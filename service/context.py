"""What service functions need from their process, built once by the web app or the worker."""

from __future__ import annotations

from dataclasses import dataclass

from service.config import Settings
from service.db import Database
from service.messages import Dispatcher
from service.storage import UploadStore


@dataclass(frozen=True)
class Context:
    settings: Settings
    db: Database
    dispatcher: Dispatcher
    store: UploadStore
