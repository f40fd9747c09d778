"""A small upload service that keeps working when a cloud is down (Flask).

Every upload is replicated by failover; downloads come from any healthy replica and are
verified against their sha256. Run it against your clouds::

    pip install "failover[all,examples]"
    FAILOVER_BACKENDS="s3://acme-uploads,az://acme-uploads,gs://acme-uploads" \\
        python examples/webapp.py

or, with no FAILOVER_BACKENDS, against three local directories. Then::

    curl -T report.pdf http://127.0.0.1:8000/files/reports/q3.pdf
    curl http://127.0.0.1:8000/files/reports/q3.pdf -o q3.pdf
    curl "http://127.0.0.1:8000/files?prefix=reports/"
    curl http://127.0.0.1:8000/health

``create_app(store)`` builds the application around any Storage, which is how
``test_webapp_outage.py`` tests it through an outage.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator

from flask import Flask, Response, jsonify, request

import failover
from failover import (
    AllBackendsFailed,
    InvalidKeyError,
    InvalidMetadataError,
    NotFoundError,
    QuorumNotReached,
)


def create_app(store: failover.Storage) -> Flask:
    """The upload service, storing through ``store``."""
    app = Flask(__name__)

    @app.put("/files/<path:key>")
    def upload(key: str) -> tuple[Response, int]:
        info = store.put(key, request.stream, content_type=request.mimetype or None)
        return jsonify(
            key=info.key, size=info.size, sha256=info.checksum, version=info.version
        ), 201

    @app.get("/files/<path:key>")
    def download(key: str) -> Response:
        reader = store.open(key)

        def chunks() -> Iterator[bytes]:
            with reader:
                yield from reader

        return Response(chunks(), mimetype=reader.info.content_type)

    @app.delete("/files/<path:key>")
    def remove(key: str) -> tuple[str, int]:
        store.delete(key)
        return "", 204

    @app.get("/files")
    def listing() -> Response:
        prefix = request.args.get("prefix", "")
        return jsonify([{"key": i.key, "size": i.size} for i in store.list(prefix)])

    @app.get("/health")
    def health() -> Response:
        return jsonify(
            {
                name: {"breaker": h.state, "score": round(h.score, 2), "pending": h.pending_repairs}
                for name, h in store.health().items()
            }
        )

    # failover's errors map onto HTTP: the caller's mistake, absence, or "try later".
    @app.errorhandler(InvalidKeyError)
    @app.errorhandler(InvalidMetadataError)
    def bad_request(exc: Exception) -> tuple[Response, int]:
        return jsonify(error=str(exc)), 400

    @app.errorhandler(NotFoundError)
    def not_found(exc: Exception) -> tuple[Response, int]:
        return jsonify(error="not found"), 404

    @app.errorhandler(QuorumNotReached)
    @app.errorhandler(AllBackendsFailed)
    def unavailable(exc: Exception) -> tuple[Response, int]:
        return jsonify(error=str(exc)), 503

    return app


def main() -> int:
    workdir = None
    if os.environ.get("FAILOVER_BACKENDS"):
        store = failover.Storage.from_env()
    else:
        workdir = tempfile.mkdtemp(prefix="failover-webapp-")
        urls = [f"file://{workdir}/{cloud}?name={cloud}" for cloud in ("aws", "azure", "gcp")]
        store = failover.Storage.from_urls(urls, journal=f"{workdir}/journal.sqlite")
        print(f"no FAILOVER_BACKENDS: storing in three directories under {workdir}")
    try:
        with store:
            create_app(store).run(host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
    finally:
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
