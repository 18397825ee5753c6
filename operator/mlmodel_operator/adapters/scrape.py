"""The runtime pods' /metrics, read over HTTP for a canary's analysis windows (the one place the operator talks
to the runtime pods). A pod that does not answer in time is left out of the scrape: its counters count again
from the next scrape that reaches it, as a restarted pod's do."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import urllib3

log = logging.getLogger(__name__)


class MetricsScraper:
    """GET each pod's metrics URL; pods are scraped one after another with a short timeout."""

    def __init__(self, timeout_seconds: float = 2.0) -> None:
        self.http = urllib3.PoolManager(timeout=urllib3.Timeout(total=timeout_seconds), retries=False)

    def __call__(self, targets: Mapping[str, str]) -> dict[str, str]:
        """pod name -> its metrics URL; returns pod name -> the text it served."""
        out: dict[str, str] = {}
        for pod, url in targets.items():
            try:
                response = self.http.request("GET", url)
            except urllib3.exceptions.HTTPError as exc:
                log.info("scraping %s at %s failed: %s", pod, url, exc)
                continue
            if response.status == 200:
                out[pod] = response.data.decode("utf-8", errors="replace")
            else:
                log.info("scraping %s at %s answered %d", pod, url, response.status)
        return out
