"""The compact duplicate table behind the validator: exact across its resizes."""

from worker.jobs import SeenSet


def ids(count: int, salt: int = 0) -> list[str]:
    return [f"{salt:08x}-0000-4000-8000-{i:012x}" for i in range(count)]


def test_every_id_is_new_once_and_a_duplicate_after_many_resizes():
    seen = SeenSet()
    first = ids(20_000)
    assert all(seen.add(sid) for sid in first)  # grows from 1,024 slots many times
    assert len(seen) == 20_000
    assert not any(seen.add(sid) for sid in first[::97])
    assert all(seen.add(sid) for sid in ids(500, salt=1))
    assert len(seen) == 20_500
