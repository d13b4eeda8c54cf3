"""Fixtures shared by the provider tests, which drive a provider on its own against a fake."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A real client session, the one a provider is given by the desk."""
    async with aiohttp.ClientSession() as session:
        yield session
