"""Redis URLs for one server, a Sentinel-managed master and a Cluster."""

from __future__ import annotations

import pytest

from realtime.backends.redis.url import parse_redis_url, safe_url


def test_sentinel_url_names_the_sentinels_the_master_and_the_database() -> None:
    t = parse_redis_url(
        "redis-sentinel://ana:s3cret@10.0.0.1:26380,sentinel-b,[::1]:26381/cache?db=2"
    )
    assert t.kind == "sentinel"
    assert t.hosts == (("10.0.0.1", 26380), ("sentinel-b", 26379), ("::1", 26381))
    assert (t.service, t.db, t.username, t.password) == ("cache", 2, "ana", "s3cret")
    assert "s3cret" not in t.safe_url and t.safe_url.startswith("redis-sentinel://ana:***@10.0.0.1")


def test_cluster_url_lists_seed_nodes_with_the_default_port() -> None:
    t = parse_redis_url("redis-cluster://n1:7000,n2")
    assert t.kind == "cluster" and t.hosts == (("n1", 7000), ("n2", 6379)) and t.db == 0


def test_plain_redis_urls_are_one_server() -> None:
    for url in ("redis://127.0.0.1:6379/0", "rediss://h:6380/1", "unix:///run/redis.sock"):
        assert parse_redis_url(url).kind == "server"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("redis-sentinel://h1:26379", "name the master"),
        ("redis-sentinel://h1:26379/a/b", "name the master"),
        ("redis-sentinel://h1:99999/m", "bad port"),
        ("redis-sentinel://h1:x/m", "bad port"),
        ("redis-sentinel:///m", "no host"),
        ("redis-sentinel://h1/m?db=two", "db must be a number"),
        ("redis-sentinel://h1/m?timeout=3", "unknown option 'timeout'"),
        ("redis-cluster://h1:7000/0", "no path"),
        ("redis-cluster://h1:7000?db=1", "db 0 only"),
        ("memcached://h1", "not a Redis URL"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_redis_url(url)


def test_safe_url_hides_only_the_password() -> None:
    assert safe_url("redis://u:pw@h:1/0") == "redis://u:***@h:1/0"
    assert safe_url("redis-cluster://:pw@a:1,b:2") == "redis-cluster://:***@a:1,b:2"
    assert safe_url("redis://h:1/0") == "redis://h:1/0"
