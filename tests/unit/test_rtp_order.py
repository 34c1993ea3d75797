"""RTP's sequence numbers, without a socket: datagrams put back in order,
losses given up after a window and counted, the numbers wrapping at 65536,
and what comes too late left out."""

from restreamer.sources.rtp import WINDOW, Resequencer


def feed(order, *sequences):
    """Each sequence number's datagram, its payload the number; what came out."""
    for sequence in sequences:
        order.take(sequence, b"%d " % sequence)
    out, order.out = order.out, []
    return b"".join(out).decode().split()


def test_a_swapped_pair_comes_out_in_order_across_the_wrap():
    order = Resequencer()
    assert feed(order, 65534, 0, 65535, 1) == ["65534", "65535", "0", "1"]
    assert order.missing == 0


def test_a_lost_number_is_given_up_once_the_window_is_full_and_counted():
    order = Resequencer()
    assert feed(order, 10, 12) == ["10"]
    # Held until more than WINDOW wait behind the gap: then it is lost.
    assert feed(order, *range(13, 12 + WINDOW)) == []
    assert feed(order, 12 + WINDOW) == [str(n) for n in range(12, 13 + WINDOW)]
    assert order.missing == 1


def test_one_that_comes_after_it_was_given_up_is_left_out():
    order = Resequencer()
    feed(order, 1, *range(3, 4 + WINDOW))
    assert order.missing == 1
    assert feed(order, 2, 4 + WINDOW) == [str(4 + WINDOW)]
    assert order.missing == 1


def test_a_reordered_pair_at_the_start_begins_the_stream_at_the_first_to_come():
    order = Resequencer()
    # Nothing before the first datagram is known to be due: the late one is no loss.
    assert feed(order, 101, 100, 102) == ["101", "102"]
    assert order.missing == 0


def test_a_sender_that_begins_again_behind_is_followed_after_a_window_as_a_break():
    order = Resequencer()
    feed(order, *range(40_000, 40_010))
    # A restarted encoder numbers from anywhere: here behind, where stragglers are.
    assert feed(order, *range(1000, 1000 + WINDOW)) == []
    assert feed(order, 1000 + WINDOW, 1001 + WINDOW) == [str(1000 + WINDOW), str(1001 + WINDOW)]
    assert (order.breaks, order.missing) == (1, 0)


def test_a_sender_that_begins_again_far_ahead_is_a_break_not_thousands_lost():
    order = Resequencer()
    feed(order, *range(1000, 1010))
    feed(order, *range(30_000, 30_000 + WINDOW))
    assert feed(order, 30_000 + WINDOW) == [str(30_000 + WINDOW)]
    assert (order.breaks, order.missing) == (1, 0)


def test_what_was_held_before_a_new_beginning_comes_first_its_gaps_counted():
    order = Resequencer()
    feed(order, 1, 3, 5)
    feed(order, *range(20_000, 20_000 + WINDOW))
    assert feed(order, 20_000 + WINDOW) == ["3", "5", str(20_000 + WINDOW)]
    assert (order.breaks, order.missing) == (1, 2)


def test_stragglers_between_datagrams_in_order_never_begin_anew():
    order = Resequencer()
    feed(order, *range(100, 120))
    for sequence in range(120, 120 + 3 * WINDOW):
        assert feed(order, sequence, sequence - 10) == [str(sequence)]  # each with a duplicate
    assert (order.breaks, order.missing) == (0, 0)
