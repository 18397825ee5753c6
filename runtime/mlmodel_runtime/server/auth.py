"""Request authentication: a bearer token on every inference and metadata request (health stays open).

Two ways to check a token, chosen by MLMODEL_AUTH:

- `kubernetes`: a ServiceAccount (or any Kubernetes) token, checked by a TokenReview and authorized by
  a SubjectAccessReview (`get`, or the configured verb, on this MLModel), both as the runtime's own
  ServiceAccount (which needs only `system:auth-delegator`). Verdicts, both ways, are kept in a
  bounded LRU for a bounded time, keyed by the token's SHA-256 (the token itself is never stored),
  so a repeated token costs a hash and a dict lookup.
- `apikeys`: keys from a mounted Secret, one file per key holding the key's SHA-256 in hex (the key
  itself is never on disk in the pod); a presented key is hashed and compared with every stored hash
  in constant time. The folder is read again at most every `reload_s`, so a key removed from (or
  added to) the Secret stops (or starts) working once the kubelet updates the volume, without a restart.

The identity (the token's username, or `apikey:<file name>`) is the rate limit's client. No token
ever goes into a message, a log line or a metric label.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mlmodel_runtime.server.errors import AuthUnavailable, Forbidden, Unauthenticated

log = logging.getLogger(__name__)

MLMODEL_GROUP = "serving.mlmodel.io"
MLMODEL_RESOURCE = "mlmodels"


class Authenticator(Protocol):
    async def identify(self, token: str | None) -> str:
        """The identity of a bearer token; raises Unauthenticated (401), Forbidden (403) or AuthUnavailable (503)."""
        ...


def bearer_token(header: str | bytes | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value; None when absent or of another scheme."""
    if header is None:
        return None
    text = header.decode("latin-1") if isinstance(header, bytes) else header
    scheme, _, token = text.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ApiKeys:
    """API keys from a folder of `<name>` files that each hold one key's SHA-256 (hex)."""

    def __init__(self, folder: Path, reload_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._folder = folder
        self._reload_s = reload_s
        self._clock = clock
        self._loaded_at = -float("inf")
        self._keys: tuple[tuple[str, str], ...] = ()

    def _load(self) -> tuple[tuple[str, str], ...]:
        now = self._clock()
        if now - self._loaded_at < self._reload_s:
            return self._keys
        keys: list[tuple[str, str]] = []
        try:
            entries = sorted(self._folder.iterdir())
        except OSError as exc:
            log.warning("cannot read the API keys", extra={"folder": str(self._folder), "error": str(exc)})
            entries = []
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_file():  # a Secret volume's ..data and its links
                continue
            stored = entry.read_text().strip().lower().removeprefix("sha256:")
            if len(stored) == 64 and all(c in "0123456789abcdef" for c in stored):
                keys.append((entry.name, stored))
            else:
                log.warning("ignoring an API key that is not a SHA-256 in hex", extra={"key_name": entry.name})
        self._keys = tuple(keys)
        self._loaded_at = now
        return self._keys

    async def identify(self, token: str | None) -> str:
        if token is None:
            raise Unauthenticated("missing bearer token: send Authorization: Bearer <API key>")
        presented = digest(token)
        match = None
        for name, stored in self._load():  # every key compared, in constant time: no early exit
            if hmac.compare_digest(presented, stored):
                match = name
        if match is None:
            raise Unauthenticated("invalid API key")
        return f"apikey:{match}"


class Reviews(Protocol):
    """The two API calls a token check makes (blocking; run in a thread)."""

    def token_review(self, token: str) -> dict[str, Any]: ...

    def access_review(self, spec: dict[str, Any]) -> dict[str, Any]: ...


class KubeReviews:
    """TokenReview and SubjectAccessReview through the kubernetes client, as the runtime's ServiceAccount
    (in the pod) or a kubeconfig's user (MLMODEL_AUTH_KUBECONFIG, for tests and local runs)."""

    def __init__(self, kubeconfig: str = "") -> None:
        from kubernetes import client, config

        if kubeconfig:
            api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        else:
            config.load_incluster_config()  # type: ignore[no-untyped-call]  # the projected token is read again as the kubelet rotates it
            api = client.ApiClient()
        self._authn = client.AuthenticationV1Api(api)
        self._authz = client.AuthorizationV1Api(api)

    def token_review(self, token: str) -> dict[str, Any]:
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
        return self._call(self._authn.create_token_review, body)

    def access_review(self, spec: dict[str, Any]) -> dict[str, Any]:
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
        return self._call(self._authz.create_subject_access_review, body)

    @staticmethod
    def _call(create: Callable[..., Any], body: dict[str, Any]) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        try:
            response = create(body, _preload_content=False, _request_timeout=5)
        except (ApiException, OSError) as exc:  # urllib3's errors are OSErrors
            status = getattr(exc, "status", None)
            where = f"answered {status}" if status else "is unreachable"
            raise AuthUnavailable(f"cannot check the token now: the API server {where}") from None
        result: dict[str, Any] = json.loads(response.data)
        return result


@dataclass(frozen=True, slots=True)
class _Verdict:
    expires: float
    identity: str | None
    error: Unauthenticated | Forbidden | None


class TokenReviewer:
    """Kubernetes tokens: TokenReview, then a SubjectAccessReview on this MLModel, with a TTL cache."""

    def __init__(
        self,
        reviews: Reviews,
        namespace: str,
        model: str,
        verb: str = "get",
        ttl_s: float = 60.0,
        max_entries: int = 10000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reviews = reviews
        self._namespace = namespace
        self._model = model
        self._verb = verb
        self._ttl_s = ttl_s
        self._max = max_entries
        self._clock = clock
        self._cache: OrderedDict[str, _Verdict] = OrderedDict()
        self.reviews = 0  # TokenReviews sent (a hit sends none)

    def __len__(self) -> int:
        return len(self._cache)

    async def identify(self, token: str | None) -> str:
        if token is None:
            raise Unauthenticated("missing bearer token: send Authorization: Bearer <Kubernetes token>")
        key = digest(token)
        now = self._clock()
        verdict = self._cache.get(key)
        if verdict is None or verdict.expires <= now:
            verdict = await self._review(token, now)
            self._cache[key] = verdict
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        if verdict.error is not None:
            raise verdict.error
        assert verdict.identity is not None
        return verdict.identity

    async def _review(self, token: str, now: float) -> _Verdict:
        expires = now + self._ttl_s
        self.reviews += 1
        review = await asyncio.to_thread(self._reviews.token_review, token)
        status = review.get("status") or {}
        if not status.get("authenticated"):
            return _Verdict(expires, None, Unauthenticated("the token is not valid (expired, revoked or not a token)"))
        user: dict[str, Any] = status.get("user") or {}
        username = str(user.get("username", ""))
        spec: dict[str, Any] = {
            "user": username,
            "groups": user.get("groups", []),
            "resourceAttributes": {
                "namespace": self._namespace, "verb": self._verb, "group": MLMODEL_GROUP,
                "resource": MLMODEL_RESOURCE, "name": self._model,
            },
        }
        if user.get("uid"):
            spec["uid"] = user["uid"]
        if user.get("extra"):
            spec["extra"] = user["extra"]
        access = await asyncio.to_thread(self._reviews.access_review, spec)
        if not (access.get("status") or {}).get("allowed"):
            return _Verdict(expires, None, Forbidden(
                f"{username} may not {self._verb} mlmodels.{MLMODEL_GROUP} '{self._model}' in namespace "
                f"'{self._namespace}'"
            ))
        return _Verdict(expires, username, None)
