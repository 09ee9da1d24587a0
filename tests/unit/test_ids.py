"""Random ids from a buffered read of the system's random source (flightbase_server.service.ids)."""

import os

import pytest

from flightbase_server.service import ids


def test_ids_are_hex_of_the_length_asked_and_never_repeat_across_refills():
    made = [ids.random_hex(16) for _ in range(3 * ids.CHUNK_BYTES // 8)]  # three refills of the buffer
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in made)
    assert len(set(made)) == len(made)
    long = ids.random_hex(2 * ids.CHUNK_BYTES + 2)  # more than one buffer at once
    assert len(long) == 2 * ids.CHUNK_BYTES + 2


@pytest.mark.parametrize("digits", [0, 1, 15, -2])
def test_an_odd_or_empty_length_is_refused(digits):
    with pytest.raises(ValueError, match="digits"):
        ids.random_hex(digits)


def test_a_forked_child_does_not_hand_out_its_parents_bytes():
    ids.random_hex(2)  # the buffer is full, with bytes the parent has yet to hand out
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, to the parent
        os.close(read)
        os.write(write, ids.random_hex(32).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 32
    assert child != ids.random_hex(32)  # the parent's next bytes: the same ones, had the buffer been kept
