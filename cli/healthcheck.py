"""`chatapi healthcheck`: is the local server ready? For HEALTHCHECKs in images without curl."""

import urllib.request

from infrastructure.settings import Settings

TIMEOUT_SECONDS = 3


def is_ready(settings: Settings) -> bool:
    """Whether the server on the configured port answers 200 on /health/ready."""
    url = f"http://127.0.0.1:{settings.port}/health/ready"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            return bool(response.status == 200)
    except OSError:  # refused, timed out, or an HTTP error status such as 503
        return False
