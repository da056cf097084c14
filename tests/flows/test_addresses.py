"""Service addresses in the flows' messages (a Dask scheduler, the Prefect API) are shown
without credentials, however malformed (softmax_core.urls)."""

from __future__ import annotations

import pytest

from flows.scoring import check_reachable
from softmax_core.errors import InvalidInputError, ServiceUnavailableError

PASSWORD = "DaskPw"


@pytest.mark.parametrize(
    ("address", "error"),
    [
        (f"tcp://u:{PASSWORD}/x@127.0.0.1:1", InvalidInputError),  # urlsplit: port "DaskPw"
        (f"tcp://u:{PASSWORD}@127.0.0.1:1", ServiceUnavailableError),  # nobody listens
        (f"u:{PASSWORD}#x@127.0.0.1:1", InvalidInputError),
    ],
)
def test_a_dask_address_with_a_password_is_never_shown_whole(
    address: str, error: type[Exception]
) -> None:
    with pytest.raises(error) as info:
        check_reachable(address, timeout=2.0)
    assert PASSWORD not in str(info.value) and "127.0.0.1:1" in str(info.value)
