"""collab/auth_cache.py on its own, with a clock the test moves."""

from __future__ import annotations

from collab.auth import Access, Principal, hash_token
from collab.auth_cache import AuthCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def user(token_id: int, user_id: int) -> Principal:
    return Principal(token_id=token_id, user_id=user_id, roles=frozenset({"annotator"}))


def test_entries_live_ttl_seconds() -> None:
    clock = Clock()
    cache = AuthCache(1.0, clock=clock)
    digest = hash_token("clb_a")
    alice = user(1, 10)
    cache.remember_principal(digest, alice, cache.ticket())
    cache.remember_dataset(alice, "demo", cache.ticket())
    clock.now += 0.999
    assert cache.principal(digest) == alice
    assert cache.dataset_allowed(alice, "demo")
    clock.now += 0.001
    assert cache.principal(digest) is None
    assert not cache.dataset_allowed(alice, "demo")
    assert len(cache) == 0  # expired entries are dropped when met


def test_never_past_the_tokens_expiry() -> None:
    clock = Clock()
    cache = AuthCache(30.0, clock=clock)
    digest = hash_token("clb_a")
    cache.remember_principal(digest, user(1, 10), cache.ticket(), expires_in=0.25)
    clock.now += 0.25
    assert cache.principal(digest) is None
    cache.remember_principal(digest, user(1, 10), cache.ticket(), expires_in=-1.0)
    assert cache.principal(digest) is None


def test_life_counts_from_before_the_database_was_read() -> None:
    clock = Clock()
    cache = AuthCache(1.0, clock=clock)
    digest = hash_token("clb_a")
    ticket = cache.ticket()
    clock.now += 0.75  # a slow lookup
    cache.remember_principal(digest, user(1, 10), ticket)
    cache.remember_dataset(user(1, 10), "demo", ticket)
    clock.now += 0.25
    assert cache.principal(digest) is None
    assert not cache.dataset_allowed(user(1, 10), "demo")
    slow = cache.ticket()
    clock.now += 2.0  # slower than the whole life: nothing kept
    cache.remember_principal(digest, user(1, 10), slow)
    assert len(cache) == 0


def test_invalidate_forgets_and_refuses_answers_read_before_it() -> None:
    cache = AuthCache(60.0)
    digest = hash_token("clb_a")
    alice = user(1, 10)
    before = cache.ticket()  # a request drew this, then asked the database ...
    cache.remember_principal(digest, alice, before)
    cache.remember_dataset(alice, "demo", before)
    cache.invalidate()  # ... while a revoke committed
    assert cache.principal(digest) is None and not cache.dataset_allowed(alice, "demo")
    cache.remember_principal(digest, alice, before)  # the stale answer is not kept
    cache.remember_dataset(alice, "demo", before)
    assert cache.principal(digest) is None and not cache.dataset_allowed(alice, "demo")
    cache.remember_principal(digest, alice, cache.ticket())
    assert cache.principal(digest) == alice


def test_one_principals_entry_never_answers_for_another() -> None:
    cache = AuthCache(60.0)
    alice, bob = user(1, 10), user(2, 11)
    link = Principal(
        token_id=3, user_id=None, roles=frozenset(), link_annotation=5, link_access=Access.READ
    )
    cache.remember_principal(hash_token("clb_alice"), alice, cache.ticket())
    cache.remember_dataset(alice, "demo", cache.ticket())
    assert cache.principal(hash_token("clb_bob")) is None
    assert cache.principal(hash_token("clb_alice")) == alice
    assert not cache.dataset_allowed(bob, "demo")
    assert not cache.dataset_allowed(link, "demo")
    assert not cache.dataset_allowed(alice, "other")
    # Another token of the same user is another principal, checked on its own.
    assert not cache.dataset_allowed(user(4, 10), "demo")


def test_off_and_bounded() -> None:
    off = AuthCache(0.0)
    off.remember_principal(hash_token("clb_a"), user(1, 10), off.ticket())
    off.remember_dataset(user(1, 10), "demo", off.ticket())
    assert len(off) == 0
    small = AuthCache(60.0, max_entries=3)
    for i in range(10):
        small.remember_principal(hash_token(f"clb_{i}"), user(i, i), small.ticket())
    assert len(small) == 3
    assert small.principal(hash_token("clb_9")) is not None
    assert small.principal(hash_token("clb_0")) is None  # the oldest went first
