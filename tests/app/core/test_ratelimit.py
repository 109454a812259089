import pytest

from app.core.exceptions import RateLimitExceededError
from app.core.ratelimit import check_rate_limit


def test_fixed_window_per_client(redis_conn):
    assert [check_rate_limit(redis_conn, "ip:a", 2, now_s=120.0) for _ in range(2)] == [1, 0]
    with pytest.raises(RateLimitExceededError) as info:
        check_rate_limit(redis_conn, "ip:a", 2, now_s=150.0)
    assert info.value.retry_after_s == 31
    assert check_rate_limit(redis_conn, "ip:b", 2, now_s=150.0) == 1  # other clients are not affected
    assert check_rate_limit(redis_conn, "ip:a", 2, now_s=180.0) == 1  # a new minute
    assert check_rate_limit(redis_conn, "ip:a", 0) == 0  # limits off


def test_cost_zero_checks_without_counting(redis_conn):
    assert check_rate_limit(redis_conn, "auth-failures:a", 1, cost=0, now_s=60.0) == 1
    assert check_rate_limit(redis_conn, "auth-failures:a", 1, now_s=60.0) == 0
    with pytest.raises(RateLimitExceededError, match="2 failed authentications"):
        check_rate_limit(redis_conn, "auth-failures:a", 2, cost=2, what="failed authentications", now_s=61.0)
    with pytest.raises(RateLimitExceededError):  # past the limit, a mere check is refused too
        check_rate_limit(redis_conn, "auth-failures:a", 2, cost=0, now_s=62.0)
