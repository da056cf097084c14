"""A conditional write whose answer was lost, retried and refused, is recognised as ours.

When a conditional PUT lands but its answer is lost (a dropped connection), the client
sends it again and the retry's condition fails: S3's normal answer is 412, although the
object is the writer's own. The store marks that refusal ``after_retry``; the protocol
must then compare the stored bytes with its own and finish (and, when they are someone
else's, go on as after any lost race). Each test runs on both stores, through wrappers
that act out the lost answer; the last ones lose a real answer between boto3 and the S3
server, and let botocore's own retry repeat the request.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from registry import Registry, events, layout, open_store
from registry.events import RegistryEvent
from registry.s3 import S3Store
from softmax_core.labelled import Labelled, read_folder
from tests.printed_digits import write_printed
from tests.registry.helpers import Interloper, LostAnswerStore, make_model


@pytest.fixture(scope="module")
def labelled_sets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Labelled, Labelled]:
    """Two small labelled sets with different images (printed digits)."""
    root = tmp_path_factory.mktemp("lost-answers")
    one = read_folder(write_printed(root / "one", 2, seed=3)).data
    two = read_folder(write_printed(root / "two", 2, seed=4)).data
    return one, two


def _moves(reg: Registry, name: str, alias: str) -> list[tuple[int, str, int]]:
    return [(h.seq, h.action, h.version) for h in reg.history(name, alias)]


def _log_entries(reg: Registry, name: str, alias: str) -> list[str]:
    return list(reg.store.list_keys(layout.alias_log_prefix(name, alias)))


def test_every_write_whose_answer_was_lost_finishes_once(
    registry_uri: str, tmp_path: Path, labelled_sets: tuple[Labelled, Labelled]
) -> None:
    """Publish (version claim), promote, rollback and dataset add each finish, once."""
    store = LostAnswerStore(open_store(registry_uri))
    seen: list[RegistryEvent] = []
    reg = Registry(store, cache_dir=tmp_path / "cache", listeners=(seen.append,))

    m1 = reg.publish(make_model(1), "digits", alias="champion")
    m2 = reg.publish(make_model(2), "digits")
    assert (m1.version, m2.version) == (1, 2)
    move = reg.promote("digits", 2, "champion")
    assert move.moved and (move.record.version, move.record.from_version) == (2, 1)
    back = reg.rollback("digits", "champion")
    assert (back.version, back.from_version, back.action) == (1, 2, "rollback")
    first = reg.add_dataset("inbox", labelled_sets[0])
    second = reg.add_dataset("inbox", labelled_sets[1])
    assert first.created and second.created
    assert (first.manifest.version, second.manifest.version) == (1, 2)

    assert store.lost, "the wrapper lost no answer: the test tested nothing"
    assert layout.alias_key("digits", "champion") in store.lost
    assert layout.manifest_key("digits", 2) in store.lost
    assert layout.dataset_manifest_key("inbox", 2) in store.lost
    plain = Registry(store.inner, cache_dir=tmp_path / "plain")  # what anyone else sees
    assert plain.version_numbers("digits") == [1, 2]
    assert [m.digest for m in plain.versions("digits")] == [m1.digest, m2.digest]
    assert plain.dataset_numbers("inbox") == [1, 2]
    assert plain.resolve("digits@champion").version == 1
    assert _moves(plain, "digits", "champion") == [
        (1, "promote", 1),
        (2, "promote", 2),
        (3, "rollback", 1),
    ]
    assert len(_log_entries(plain, "digits", "champion")) == 3  # one history entry per move
    assert [(e.event, e.payload.get("to")) for e in seen] == [  # one event per change
        (events.MODEL_PUBLISHED, None),
        (events.ALIAS_MOVED, 1),
        (events.MODEL_PUBLISHED, None),
        (events.ALIAS_MOVED, 2),
        (events.ALIAS_MOVED, 1),
    ]


def test_a_lost_answer_is_ours_even_when_another_move_came_after_it(
    registry_uri: str, tmp_path: Path
) -> None:
    """Our alias write landed, another mover moved past it before our retry: the alias no
    longer holds our bytes, but the history entry the other mover wrote for our move does.
    The promote is done; moving again would undo the later move and log ours twice."""
    store = LostAnswerStore(open_store(registry_uri))
    reg = Registry(store, cache_dir=tmp_path / "cache")
    rival = Registry(store.inner, cache_dir=tmp_path / "rival")
    for seed in (1, 2, 3):
        rival.publish(make_model(seed), "digits")
    rival.promote("digits", 1, "champion")

    store.meanwhile(
        layout.alias_key("digits", "champion"), lambda: rival.promote("digits", 3, "champion")
    )
    move = reg.promote("digits", 2, "champion")
    assert store.lost[0] == layout.alias_key("digits", "champion")
    assert move.moved and (move.record.seq, move.record.version) == (2, 2)
    assert rival.resolve("digits@champion").version == 3
    assert _moves(rival, "digits", "champion") == [
        (1, "promote", 1),
        (2, "promote", 2),
        (3, "promote", 3),
    ]


def test_a_refused_retry_that_is_not_ours_is_a_lost_race(registry_uri: str, tmp_path: Path) -> None:
    """``after_retry`` alone proves nothing: when another writer's bytes are there, the
    version number goes to them and the alias move is made again on top of theirs."""
    store = Interloper(open_store(registry_uri))
    reg = Registry(store, cache_dir=tmp_path / "cache")
    rival = Registry(store.inner, cache_dir=tmp_path / "rival")
    reg.publish(make_model(1), "digits", alias="champion")

    store.arm(layout.manifest_key("digits", 2), lambda: rival.publish(make_model(9), "digits"))
    ours = reg.publish(make_model(2), "digits")
    assert store.refused == [layout.manifest_key("digits", 2)]
    assert ours.version == 3 and ours.digest != rival.manifest("digits", 2).digest
    assert rival.manifest("digits", 3).digest == ours.digest

    store.arm(
        layout.alias_key("digits", "champion"), lambda: rival.promote("digits", 2, "champion")
    )
    move = reg.promote("digits", 3, "champion")
    assert store.refused[-1] == layout.alias_key("digits", "champion")
    assert move.moved and move.record.from_version == 2
    assert _moves(rival, "digits", "champion") == [
        (1, "promote", 1),
        (2, "promote", 2),
        (3, "promote", 3),
    ]


# --- a real lost answer between boto3 and the S3 server -----------------------------------


class LoseFirstAnswer:
    """botocore event handlers on one S3 client: the first conditional PutObject of ``key``
    is sent to the server (it lands), then botocore is told the connection closed before
    the answer came (``ConnectionClosedError``, what urllib3 reports for a dropped
    connection). Its standard retry sends the request again; the server refuses it (412)."""

    def __init__(self, client: Any, key: str) -> None:
        from botocore.httpsession import URLLib3Session

        self.key = key  # the object key in the bucket (the store's prefix included)
        self.session = URLLib3Session(timeout=10)
        self.delivered: list[int] = []  # HTTP status of the attempt whose answer was lost
        self.answers: list[tuple[int, str, int]] = []  # (status, error code, RetryAttempts)
        client.meta.events.register_first("before-send.s3.PutObject", self.before_send)
        client.meta.events.register("after-call.s3.PutObject", self.after_call)

    def before_send(self, request: Any, **_: Any) -> None:
        conditional = "If-None-Match" in request.headers or "If-Match" in request.headers
        if not conditional or self.delivered or not urlsplit(request.url).path.endswith(self.key):
            return  # botocore sends it
        from botocore.exceptions import ConnectionClosedError

        self.delivered.append(self.session.send(request).status_code)
        raise ConnectionClosedError(endpoint_url=request.url)

    def after_call(self, parsed: dict[str, Any], **_: Any) -> None:
        meta = parsed.get("ResponseMetadata", {})
        code = str(parsed.get("Error", {}).get("Code", ""))
        self.answers.append((meta.get("HTTPStatusCode", 0), code, meta.get("RetryAttempts", 0)))


def _prepared(reg: Registry, labelled_sets: tuple[Labelled, Labelled]) -> None:
    for seed in (1, 2):
        reg.publish(make_model(seed), "digits")
    reg.promote("digits", 1, "champion")
    reg.promote("digits", 2, "champion")
    reg.add_dataset("inbox", labelled_sets[0])


Operation = Callable[[Registry, tuple[Labelled, Labelled]], object]
OPERATIONS: dict[str, tuple[str, Operation]] = {  # the key whose answer is lost, the call
    "promote": (
        layout.alias_key("digits", "champion"),
        lambda reg, _: reg.promote("digits", 1, "champion"),
    ),
    "rollback": (
        layout.alias_key("digits", "champion"),
        lambda reg, _: reg.rollback("digits", "champion"),
    ),
    "publish": (
        layout.manifest_key("digits", 3),
        lambda reg, _: reg.publish(make_model(3), "digits"),
    ),
    "add_dataset": (
        layout.dataset_manifest_key("inbox", 2),
        lambda reg, sets: reg.add_dataset("inbox", sets[1]),
    ),
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_s3_a_lost_answer_retried_by_botocore_finishes(
    s3_bucket: str,
    tmp_path: Path,
    labelled_sets: tuple[Labelled, Labelled],
    operation: str,
) -> None:
    store = open_store(f"s3://{s3_bucket}/lost")
    assert isinstance(store, S3Store)
    reg = Registry(store, cache_dir=tmp_path / "cache")
    _prepared(reg, labelled_sets)

    key, call = OPERATIONS[operation]
    lose = LoseFirstAnswer(store.client, f"/{store.prefix}{key}")
    call(reg, labelled_sets)
    assert lose.delivered == [200], "the first attempt did not land"
    retried = [a for a in lose.answers if a[2] >= 1]  # the heal of a log entry may be 412 too
    assert retried == [(412, "PreconditionFailed", 1)], lose.answers

    assert reg.version_numbers("digits") == ([1, 2, 3] if operation == "publish" else [1, 2])
    assert reg.dataset_numbers("inbox") == ([1, 2] if operation == "add_dataset" else [1])
    moved = {"promote": [(3, "promote", 1)], "rollback": [(3, "rollback", 1)]}.get(operation, [])
    moves = _moves(reg, "digits", "champion")
    assert moves == [(1, "promote", 1), (2, "promote", 2), *moved]
    assert len(_log_entries(reg, "digits", "champion")) == len(moves)
