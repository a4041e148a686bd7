"""`gru-suite serve`: TensorFlow Serving's REST API and the demo page, in one process."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import threading
from contextlib import asynccontextmanager
from pathlib import Path

from apps.common.config import Config, ConfigError, ExistingPath, Names, Text, at_least, from_arguments, \
    arguments_configurer, positive, setting
from apps.common.export import DEFAULT_ROOT
from apps.registry import REGISTRY, Command, register


@dataclasses.dataclass(frozen=True)
class ServeConfig(Config):
    models: Path = setting(DEFAULT_ROOT, "the models folder: MODEL/VERSION/ SavedModels, as TensorFlow "
                           "Serving reads them", check=ExistingPath("folder"))
    host: str = setting("127.0.0.1", "address to listen on (0.0.0.0: every interface, reachable from "
                        "other machines)", check=Text(True))
    port: int = setting(8501, "port (TensorFlow Serving's REST port is 8501)", check=at_least(1, maximum=65535))
    apps: tuple[str, ...] = setting((), "serve only the exports of these apps (default: every model)",
                                    check=Names(), metavar="APP,APP")
    poll_seconds: float = setting(2.0, "look for new versions this often", check=positive(3600.0),
                                  metavar="SECONDS")
    max_concurrent_calls: int = setting(2, "model calls run at once (REST and page together); more wait "
                                        "their turn", check=at_least(1, maximum=256))
    max_body_mb: float = setting(16.0, "largest request body or upload, in MiB (answered 413 above it)",
                                 check=positive(4096.0), metavar="MIB")
    no_page: bool = setting(False, "serve the REST API only, no demo page at /")

    def check(self) -> None:
        known = REGISTRY.apps()
        unknown = [name for name in self.apps if name not in known]
        if unknown:
            raise ConfigError(["apps"], f"{', '.join(unknown)} is not an app (the apps are {', '.join(known)})")

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 2**20)


def build_server(config: ServeConfig):
    """The FastAPI app: the REST API, the page at `/`, and a thread that polls for new versions."""
    from fastapi import FastAPI

    from apps.serve.repository import ModelRepository
    from apps.serve.rest import add_rest_api

    repository = ModelRepository(config.models, config.apps or None, config.max_concurrent_calls)
    for change in repository.refresh():
        print(f"serve: {change}", file=sys.stderr)
    stop = threading.Event()

    @asynccontextmanager
    async def polling(app):
        poller = threading.Thread(target=repository.poll, args=(config.poll_seconds, stop),
                                  name="version-poller", daemon=True)
        poller.start()
        yield
        stop.set()

    app = FastAPI(title="gru-suite", lifespan=polling, docs_url=None, redoc_url=None, openapi_url=None)
    add_rest_api(app, repository, config.max_body_bytes)
    if not config.no_page:
        from apps.serve.page import mount_page

        mount_page(app, repository, config.max_body_bytes)
    return app, repository


def run_serve(args: argparse.Namespace) -> None:
    import uvicorn

    config = from_arguments(ServeConfig, args)
    app, repository = build_server(config)
    served = ", ".join(f"{name} v{repository.get(name).version}" for name in repository.names()) or "nothing yet"
    print(f"serve: {served} from {config.models}; REST API at http://{config.host}:{config.port}/v1/models/"
          f"MODEL{'' if config.no_page else f', demo page at http://{config.host}:{config.port}/'}",
          file=sys.stderr, flush=True)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning")


register(Command("serve", None, "serve exports over TensorFlow Serving's REST API, with a demo page",
                 arguments_configurer(ServeConfig), run_serve))
