"""The per-token rate limit is a sliding 60 s window: never more than the limit in any 60 s,
a boundary between clock minutes included. Time is passed in, so nothing here depends on when
the test runs."""

from __future__ import annotations

import pytest

from tests.workbench.gateway.helpers import token_for
from workbench.gateway.errors import GatewayError
from workbench.gateway.services import rate_check
from workbench.tokens.models import ApiToken

pytestmark = pytest.mark.django_db

T0 = 1_800_000_000.0  # a whole clock minute: T0 % 60 == 0


def allowed(token: ApiToken, at: float) -> bool:
    try:
        rate_check(token, now=at)
    except GatewayError as exc:
        assert exc.status == 429 and exc.code == "rate_limit_exceeded"
        return False
    return True


@pytest.fixture
def token(alice, workspace) -> ApiToken:
    token_for(alice, workspace)
    token = ApiToken.objects.get()
    token.rate_per_minute = 3
    return token


def test_it_allows_no_more_than_the_limit_across_a_minute_boundary(token) -> None:
    # A fixed clock-minute counter would let all six through (3 at :59, 3 more at :00).
    late = [allowed(token, T0 + 59 + i / 10) for i in range(3)]
    early = [allowed(token, T0 + 60 + i / 10) for i in range(3)]
    assert late == [True, True, True] and early == [False, False, False]


def test_it_frees_a_slot_as_the_oldest_request_leaves_the_window(token) -> None:
    assert [allowed(token, T0 + t) for t in (0, 10, 20)] == [True, True, True]
    assert not allowed(token, T0 + 59.9)
    assert allowed(token, T0 + 60.001)  # the request at T0 has left the window
    assert not allowed(token, T0 + 60.5)
    assert allowed(token, T0 + 70.001)


def test_it_tells_the_client_when_to_retry(token) -> None:
    for t in (0, 1, 2):
        rate_check(token, now=T0 + t)
    with pytest.raises(GatewayError) as refused:
        rate_check(token, now=T0 + 30)
    assert refused.value.headers() == {"Retry-After": "30"}


def test_it_counts_each_token_on_its_own(token, alice, workspace) -> None:
    token_for(alice, workspace)
    other = ApiToken.objects.exclude(pk=token.pk).get()
    other.rate_per_minute = 3
    for t in (0, 1, 2):
        rate_check(token, now=T0 + t)
    assert allowed(other, T0 + 3)
