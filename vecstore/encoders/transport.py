"""The HTTP client of the API encoders: POST a JSON body, get the answer's bytes, with
connection reuse, retries and a bounded total time.

Standard library only (``http.client``): no requests or httpx. Answers 429 (rate limited),
408 and 5xx, timeouts and dropped connections are retried with exponential backoff and
jitter, waiting at least what a ``Retry-After`` header asks, until ``retries`` or
``max_time`` runs out. Other failures raise at once. Imports nothing from vecstore but
``errors``.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.client import HTTPConnection, HTTPException, HTTPResponse, HTTPSConnection

from ..errors import EndpointError, InvalidInput

MAX_RESPONSE_BYTES = 256 << 20  # a response larger than this is refused, not buffered
MAX_BACKOFF = 30.0  # seconds: the longest wait between two attempts, Retry-After aside


@dataclass(frozen=True)
class Failure:
    """One attempt that failed: what to tell the user, whether trying again may help, and
    the wait the server asked for (``Retry-After``), if any."""

    message: str
    retryable: bool
    retry_after: float | None = None
    status: int | None = None
    body: str = ""


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def retryable_status(status: int) -> bool:
    """429 (rate limited), 408 (request timeout) and server errors, but not 501 or 505,
    which another attempt cannot change."""
    return status in (408, 429) or (status >= 500 and status not in (501, 505))


class Transport:
    """POST JSON to one URL, reusing one keep-alive connection per thread.

    Parameters
    ----------
    url : str
        The full endpoint URL (``http://`` or ``https://``).
    timeout : float
        Seconds to wait for one attempt (connect and answer).
    retries : int
        Attempts after the first, for retryable failures.
    backoff : float
        The first wait, in seconds; each later one doubles (at most ``MAX_BACKOFF``), and is
        jittered to between half and all of that, so clients throttled together spread out.
    max_time : float
        Seconds one ``post`` may take in all, attempts and waits included: no attempt
        starts, and no wait begins, that would end after it.
    """

    def __init__(self, url: str, *, timeout: float, retries: int, backoff: float, max_time: float):
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_time = max_time
        parts = urllib.parse.urlsplit(url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = parts.path or "/"
        self._local = threading.local()  # a connection is used by one thread at a time
        self._random = random.Random()  # jitter: deliberately unseeded, to spread clients

    # -- connections ------------------------------------------------------------------------

    def _connection(self) -> tuple[HTTPConnection, str]:
        """This thread's connection and the request target (the full URL via a proxy)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn, target = self._connect()
            self._local.conn, self._local.target = conn, target
        return conn, self._local.target

    def _connect(self) -> tuple[HTTPConnection, str]:
        scheme = "https" if self._https else "http"
        proxy = urllib.request.getproxies().get(scheme)
        if proxy and not urllib.request.proxy_bypass(self._host):
            p = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
            if self._https:  # a CONNECT tunnel through the proxy
                conn = HTTPSConnection(p.hostname, p.port or 8080, timeout=self.timeout)
                conn.set_tunnel(self._host, self._port)
                return conn, self._path
            return HTTPConnection(p.hostname, p.port or 8080, timeout=self.timeout), self.url
        cls = HTTPSConnection if self._https else HTTPConnection
        return cls(self._host, self._port, timeout=self.timeout), self._path

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- requests ---------------------------------------------------------------------------

    def post(
        self, body: bytes, headers: dict[str, str], hints: dict[int, str] | None = None
    ) -> bytes:
        """The answer's body to a successful POST, or ``EndpointError`` once retrying is
        over (the message names the URL, the status and the attempts, plus ``hints`` of
        the final status)."""
        start = time.monotonic()
        deadline = start + self.max_time
        attempt = 0
        while True:
            outcome = self._attempt(body, headers, deadline - time.monotonic())
            if isinstance(outcome, bytes):
                return outcome
            wait = min(MAX_BACKOFF, self.backoff * 2**attempt)
            wait *= 0.5 + 0.5 * self._random.random()
            if outcome.retry_after is not None:
                wait = max(wait, outcome.retry_after)
            over = time.monotonic() + wait >= deadline
            if not outcome.retryable or attempt >= self.retries or over:
                tries = ""
                if attempt:
                    spent = time.monotonic() - start
                    tries = f" (after {attempt + 1} attempts in {spent:.1f} s)"
                hint = (hints or {}).get(outcome.status, "")
                raise EndpointError(f"embedding endpoint {self.url} {outcome.message}{tries}{hint}")
            time.sleep(wait)
            attempt += 1

    def _attempt(self, body: bytes, headers: dict[str, str], budget: float) -> bytes | Failure:
        """One request; a connection the server closed while idle is reopened once, at
        once (a keep-alive connection may be dropped between two requests)."""
        timeout = max(0.001, min(self.timeout, budget))
        for fresh in (False, True):
            conn, target = self._connection()
            reused = conn.sock is not None
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            try:
                conn.request("POST", target, body=body, headers=headers)
                resp = conn.getresponse()
                return self._answer(resp)
            except (ConnectionResetError, BrokenPipeError, HTTPException) as exc:
                self.close()
                if reused and not fresh:
                    continue  # the idle connection was dropped: once more, on a new one
                return Failure(f"failed: {type(exc).__name__}: {exc}", retryable=True)
            except TimeoutError:
                self.close()
                return Failure(f"timed out after {timeout:g} s", retryable=True)
            except OSError as exc:  # refused, unreachable, no such host: not transient
                self.close()
                reason = exc.strerror or str(exc) or type(exc).__name__
                return Failure(f"could not be reached: {reason}", retryable=False)
        raise AssertionError("unreachable")

    def _answer(self, resp: HTTPResponse) -> bytes | Failure:
        raw = resp.read(MAX_RESPONSE_BYTES + 1)
        if len(raw) > MAX_RESPONSE_BYTES:
            self.close()  # the rest of the answer is still on the connection
            raise InvalidInput(
                f"embedding endpoint {self.url} sent more than {MAX_RESPONSE_BYTES} bytes"
            )
        if resp.status < 300:
            return raw
        detail = " ".join(raw[:500].decode("utf-8", "replace").split())[:300]
        return Failure(
            f"answered HTTP {resp.status} {resp.reason}" + (f": {detail}" if detail else ""),
            retryable=retryable_status(resp.status),
            retry_after=retry_after(resp.getheader("Retry-After")),
            status=resp.status,
            body=detail,
        )
