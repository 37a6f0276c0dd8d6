"""Running the gateway under uvicorn, alone or next to the demo's feedback
service (one event loop, two loopback servers)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.settings import LoadedSettings

DEMO_KEY = "demo-key"
"""The demo's documented API key (config/demo.yaml stores only its hash)."""
DEMO_HEADERS = {"X-API-Key": DEMO_KEY}


def _server(app: Starlette, host: str, port: int, log_level: str = "info") -> uvicorn.Server:
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level))


def serve(loaded: LoadedSettings, host: str, port: int) -> None:
    """Serve the gateway until interrupted."""
    _server(create_app(loaded), host, port).run()


def serve_demo(
    loaded: LoadedSettings,
    host: str,
    port: int,
    data_dir: Path,
    feedback_port: int,
    ready: Callable[[], None] = lambda: None,
) -> None:
    """Serve the gateway and, on loopback, the feedback service it reads over HTTP;
    ``ready`` runs (in a thread) once the feedback service answers."""
    from gateway.demodata.feedback_service import create_feedback_app

    feedback = _server(create_feedback_app(data_dir), "127.0.0.1", feedback_port, "warning")
    gateway = _server(create_app(loaded, DEMO_HEADERS), host, port)

    async def both() -> None:
        task = asyncio.create_task(feedback.serve())
        while not feedback.started:
            if task.done():
                task.result()
                raise SystemExit(f"the feedback service could not start on {feedback_port}")
            await asyncio.sleep(0.05)
        await asyncio.to_thread(ready)
        try:
            await gateway.serve()
        finally:
            feedback.should_exit = True
            await task

    asyncio.run(both())
