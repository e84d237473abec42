"""Provider errors, classified so the engine knows whether trying again can help."""

from __future__ import annotations


class FusionError(Exception):
    """Base of every error the engine raises on purpose."""


class ProviderError(FusionError):
    """A provider call failed.

    ``permanent`` errors (bad key, bad request, unknown model) are not retried with the same
    model; retryable ones (rate limits, 5xx, timeouts, connection errors) are, honouring
    ``retry_after`` seconds when the provider sent it. The message names the provider and the
    model and never contains a key.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        model: str,
        permanent: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.model = model
        self.permanent = permanent
        self.status = status
        self.retry_after = retry_after

    def __str__(self) -> str:
        code = f" (HTTP {self.status})" if self.status else ""
        return f"{self.provider}/{self.model}: {self.message}{code}"


class TruncatedStream(ProviderError):
    """The stream ended without a finish reason: a failure, never a short answer."""


class BudgetExceeded(FusionError):
    """The run's estimated or actual cost is over its cap."""
