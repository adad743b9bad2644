"""engine serve's limits are validated before anything starts, with the bad value named."""

from __future__ import annotations

import pytest
from engine.server.launcher import ServeOptions

from engine.errors import InvalidConfigError


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("max_tensor_elements", 0, "max_tensor_elements must be >= 1; was 0"),
        ("max_tensor_elements", 2**40 + 1, r"max_tensor_elements must be <= 2\^40; was 1099"),
        ("max_inputs", 0, "max_inputs must be >= 1; was 0"),
        ("max_message_bytes", 10, r"max_message_bytes must be in \[1024, 2147483647\]; was 10"),
        ("grace_s", -1.0, "grace_s must be >= 0; was -1.0"),
    ],
)
def test_bad_limits_are_refused(field: str, value: object, match: str) -> None:
    with pytest.raises(InvalidConfigError, match=match):
        ServeOptions(demo=True, **{field: value})


def test_largest_element_limit_is_accepted() -> None:
    assert ServeOptions(demo=True, max_tensor_elements=2**40).max_tensor_elements == 2**40
