"""A small HTTP client of the control plane, for the ``ulak`` commands (no FastAPI needed)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx


class ApiClientError(RuntimeError):
    """The API answered with an error (its JSON ``code``, message and field), or could not be reached."""

    def __init__(
        self, message: str, status: int = 0, code: str = "unreachable", field: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.field = field

    def __str__(self) -> str:
        where = f" ({self.field})" if self.field else ""
        return f"{self.code}{where}: {self.message}"


class ApiClient:
    def __init__(self, url: str, token: str | None, *, timeout: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise ApiClientError(
                f"cannot reach the API at {self.http.base_url}: {exc}; is `ulak up` running?"
            ) from None
        if response.status_code >= 400:
            raise _error(response)
        return response

    def submit(
        self, path: Path, options: dict[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        data = {
            k: (json.dumps(v) if isinstance(v, bool) else str(v)) for k, v in options.items() if v is not None
        }
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        with path.open("rb") as f:
            result: dict[str, Any] = self._call(
                "POST", "/v1/jobs", files={"file": (path.name, f)}, data=data, headers=headers
            ).json()
        return result

    def job(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/v1/jobs/{job_id}").json()
        return result

    def summary(self, job_id: str, *, bucket: int = 60) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "GET", f"/v1/jobs/{job_id}/summary", params={"bucket": bucket}
        ).json()
        return result

    def summary_csv(self, job_id: str) -> bytes:
        return self._call("GET", f"/v1/jobs/{job_id}/summary", params={"format": "csv"}).content

    def operators(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/v1/operators").json()
        return result

    def jobs(self, *, state: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit, **({"state": state} if state else {})}
        result: list[dict[str, Any]] = self._call("GET", "/v1/jobs", params=params).json()["jobs"]
        return result

    def purge(self, *, older_than_days: float | None = None, dry_run: bool = False) -> list[str]:
        body = {"older_than_days": older_than_days, "dry_run": dry_run}
        ids: list[str] = self._call("POST", "/v1/jobs/purge", json=body).json()["purged"]
        return ids

    def optouts_add(
        self, numbers: list[str], *, brand: str | None = None, source: str = "api", detail: str = ""
    ) -> dict[str, Any]:
        body = {"numbers": numbers, "brand": brand, "source": source, "detail": detail}
        result: dict[str, Any] = self._call("POST", "/v1/optouts", json=body).json()
        return result

    def optouts_remove(self, number: str, *, brand: str | None = None) -> dict[str, Any]:
        params = {"brand": brand} if brand else {}
        result: dict[str, Any] = self._call("DELETE", f"/v1/optouts/{number}", params=params).json()
        return result

    def optouts(self, *, brand: str | None = None) -> Iterator[dict[str, Any]]:
        """Every entry of a list, page by page."""
        cursor = 0
        while True:
            params: dict[str, Any] = {"cursor": cursor, "limit": 5000, **({"brand": brand} if brand else {})}
            page = self._call("GET", "/v1/optouts", params=params).json()
            yield from page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                return

    def consents_record(self, records: list[dict[str, Any]], *, brand: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST", "/v1/consents", json={"records": records, "brand": brand}
        ).json()
        return result

    def consents(self, *, brand: str | None = None) -> dict[str, Any]:
        params = {"brand": brand} if brand else {}
        result: dict[str, Any] = self._call("GET", "/v1/consents", params=params).json()
        return result

    def optouts_iys(self, *, brand: str | None = None) -> bytes:
        params = {"brand": brand} if brand else {}
        return self._call("GET", "/v1/optouts.iys.csv", params=params).content

    def replies(self, *, kind: str | None = None, limit: int = 50) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, **({"kind": kind} if kind else {})}
        result: dict[str, Any] = self._call("GET", "/v1/replies", params=params).json()
        return result

    def steer(self, job_id: str, action: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"/v1/jobs/{job_id}/{action}").json()
        return result

    def download(self, job_id: str, out: Path, *, kind: str = "report") -> int:
        """Stream the report (or the rejected rows) to *out*, as CSV or Parquet by its suffix."""
        fmt = "parquet" if out.suffix.lower() == ".parquet" else "csv"
        size = 0
        try:
            with self.http.stream("GET", f"/v1/jobs/{job_id}/{kind}", params={"format": fmt}) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error(response)
                with out.open("wb") as f:
                    for chunk in response.iter_bytes():
                        f.write(chunk)
                        size += len(chunk)
        except httpx.HTTPError as exc:
            raise ApiClientError(f"cannot reach the API at {self.http.base_url}: {exc}") from None
        return size

    def events(self, job_id: str, *, interval: float = 1.0) -> Iterator[dict[str, Any]]:
        """The job's progress events until its end (server-sent events)."""
        with self.http.stream(
            "GET", f"/v1/jobs/{job_id}/events", params={"interval": interval}, timeout=None
        ) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    yield json.loads(line.removeprefix("data: "))


def _error(response: httpx.Response) -> ApiClientError:
    """The API's JSON error body (code, message, field) as an exception; any other body as text."""
    try:
        body = response.json()
        return ApiClientError(body["message"], response.status_code, body["code"], body.get("field"))
    except (ValueError, KeyError):
        return ApiClientError(response.text[:500], response.status_code, "error")
