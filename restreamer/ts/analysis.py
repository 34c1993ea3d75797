"""Transport-stream health of one stream: ETSI TR 101 290 priority-1 checks,
bitrates, programs and keyframes, from the packets as they arrive.

Fed every chunk of aligned packets at the hub's input, with the time it
arrived.  The work is per chunk: the PID and flag bytes of every packet are
sliced out as three columns (``chunk[1::188]`` and so on, in C), packets are
counted per PID by ``collections.Counter`` (in C), and the one Python loop
runs over those columns comparing small ints for the continuity counters.
Only the few PAT, PMT and PCR packets, and the first packet of each
keyframe (for the picture size), are looked at further.

The error names and meanings are TR 101 290's (section 5.2.1):

- 1.1 TS_sync_loss and 1.2 Sync_byte_error: a sync byte missing where one
  was due.  :class:`~restreamer.ts.packets.PacketAligner` drops lock at the
  first one and regains it after five good packets, so each loss of lock is
  one of each; the bytes skipped while out of lock are counted beside them.
- 1.3 PAT_error: no PAT section for ``PAT_TIMEOUT``, a section on PID 0 that is
  not a PAT, or a PID 0 packet with scrambling bits set.
- 1.4 Continuity_count_error: a continuity counter out of order, a packet
  repeated more than twice, unless the discontinuity_indicator says so;
  not checked on the null PID or on packets without payload (one of those
  with the discontinuity_indicator announces the count that follows).
- 1.5 PMT_error: a PMT the PAT names not seen for ``PMT_TIMEOUT``, or scrambled.
- 1.6 PID_error: a PID a PMT lists not seen for ``PID_TIMEOUT``; the standard
  leaves that time to the user.

A timeout counts once per gap, however long the gap lasts.  PAT and PMT
repetition is judged on the stream's own clock, its first program's PCR, as
a TR 101 290 analyser at the encoder would judge it: data that arrives in
bursts (an HTTP upstream whose sender flushes 32 KiB at a time, say) has
arrival gaps longer than ``PAT_TIMEOUT`` while its PAT comes every 0.1 s of
stream time.  Without a PCR (none yet on a connection, or none for
``PCR_TIMEOUT``) the arrival time is the clock, and a chunk is judged after
the PAT and PMT it carries, so a burst after a silence is no error by itself.
PID_error, with its longer timeout, uses arrival times.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING

from .packets import PACKET_SIZE
from .psi import (NULL_PID, PAT_PID, TABLE_PAT, TABLE_PMT, PMT, SectionAssembler, SectionError,
                  is_rap, parse_pat, parse_pmt, payload, unit_starts)
from .timestamps import PCR_HZ, PCR_WRAP, read_pcr
from .video import picture_size

if TYPE_CHECKING:
    from .packets import PacketAligner

PAT_TIMEOUT = 0.5  # seconds
PMT_TIMEOUT = 0.5
PID_TIMEOUT = 5.0
#: Seconds a PCR may be missing on the PCR PID before the program is said to have none.
PCR_TIMEOUT = 1.0
#: Seconds of stream time between two PCRs beyond which (or backwards) the
#: clock is taken to have been reset (a splice, a new lap), not to have run.
PCR_JUMP = 1.0
#: Seconds bitrates are measured over.
RATE_INTERVAL = 1.0
#: Keyframe intervals averaged for the reported one.
KEYFRAMES_KEPT = 8

#: TR 101 290 priority-1 errors, in the standard's order.
ERRORS = ("TS_sync_loss", "Sync_byte_error", "PAT_error", "Continuity_count_error",
          "PMT_error", "PID_error")

#: Clears the flag bits of a PID's high byte (``bytes.translate`` table).
_PID_HIGH = bytes(b & 0x1F for b in range(256))


class Analyser:
    """The health figures of one stream, across its upstream connections.

    ``feed(chunk, now)`` for every chunk; ``connected(aligner, now)`` when a
    new upstream connection starts (continuity and timeouts start afresh,
    counts go on); ``snapshot(now)`` for a report.
    """

    def __init__(self, pid_timeout: float = PID_TIMEOUT) -> None:
        self.pid_timeout = pid_timeout
        self.errors = dict.fromkeys(ERRORS, 0)
        self.cc_errors: collections.Counter[int] = collections.Counter()  # per PID
        self.packets: collections.Counter[tuple[int, int]] = collections.Counter()  # per (PID high, low)
        self._aligner: PacketAligner | None = None
        self._sync_before = (0, 0)  # losses and skipped bytes of earlier connections
        # Programs, as the latest PAT and PMTs say.
        self._pat_section = b""
        self._pmt_pids: dict[int, int] = {}  # PMT PID -> program number
        self._pmt_sections: dict[int, bytes] = {}
        self.pmts: dict[int, PMT] = {}  # PMT PID -> its latest PMT
        self._assemblers: dict[int, SectionAssembler] = {}
        self._watch: frozenset[int] = frozenset((PAT_PID,))  # PIDs whose packets are read
        self._pcr_pids: frozenset[int] = frozenset()
        self._clock_pid: int | None = None  # the PCR PID whose PCR is the stream's clock
        self._listed: dict[int, int] = {}  # elementary PIDs the PMTs list -> stream_type
        self._video: tuple[int, str] | None = None
        # Per connection.
        self._cc: dict[int, int] = {}
        self._pat_at = 0.0
        self._pat_late = False
        self._pmt_at: dict[int, float] = {}
        self._late: set[int] = set()  # PMT and listed PIDs whose timeout has been counted
        self._seen_at: dict[int, float] = {}  # listed PID -> last seen
        self._pcr_at: dict[int, float] = {}
        self._clock: float | None = None  # stream seconds since this connection's first PCR
        self._clock_pcr = 0  # the PCR (27 MHz) the clock last read
        self._started = False
        # Rates and keyframes.
        self._rate_at = 0.0
        self._rate_base: collections.Counter[tuple[int, int]] = collections.Counter()
        self.rates: dict[int, float] = {}  # PID -> bits per second over the last interval
        self._rap_at: float | None = None
        self._rap_intervals: collections.deque[float] = collections.deque(maxlen=KEYFRAMES_KEPT)
        self.picture: tuple[int, int] | None = None  # the video's (width, height), once known

    # -- input -------------------------------------------------------------

    def connected(self, aligner: "PacketAligner", now: float) -> None:
        """A new upstream connection, aligned by ``aligner``, starts now."""
        self._sync_before = self._sync_totals()
        self._aligner = aligner
        self._cc.clear()
        self._assemblers.clear()
        self._late.clear()
        self._clock = None
        self._started = False
        self._rap_at = None

    def feed(self, chunk: bytes, now: float) -> None:
        """Analyse a chunk of whole, aligned packets that arrived at ``now``."""
        if not self._started:
            self._start(now)
        elif self._clock is not None and now - self._pcr_at.get(self._clock_pid, now) > PCR_TIMEOUT:
            self._clock = None  # the PCR has gone: arrival time judges again
            self._restart_psi_timers(now)
        highs = chunk[1::PACKET_SIZE].translate(_PID_HIGH)
        lows = chunk[2::PACKET_SIZE]
        self.packets.update(zip(highs, lows))
        cc, watch = self._cc, self._watch
        picked = []
        offset = -PACKET_SIZE
        for high, low, flags in zip(highs, lows, chunk[3::PACKET_SIZE]):
            offset += PACKET_SIZE
            pid = high << 8 | low
            if flags & 0x10 and pid != NULL_PID:  # carries payload
                last = cc.get(pid, -1)
                count = flags & 0x0F
                if count != (last + 1) & 0x0F:
                    count = self._out_of_order(chunk, offset, pid, count, last)
                cc[pid] = count
            elif flags & 0x20 and pid != NULL_PID and chunk[offset + 4] and chunk[offset + 5] & 0x80:
                cc[pid] = flags & 0x0F  # an announced discontinuity without payload: the new count
            if pid in watch:
                picked.append(offset)
        self._check_pids(now, highs, lows)
        if picked:
            self._read_watched(chunk, picked, now)
        if self._clock is None:
            self._check_psi(now)
        if self._video is not None:
            self._find_keyframes(chunk, now)
        if now - self._rate_at >= RATE_INTERVAL:
            self._measure_rates(now)

    def _start(self, now: float) -> None:
        self._started = True
        self._pat_at = now
        self._pat_late = False
        self._pmt_at = dict.fromkeys(self._pmt_pids, now)
        self._seen_at = dict.fromkeys(self._listed, now)
        if not self._rate_at:
            self._rate_at = now

    def _out_of_order(self, chunk: bytes, offset: int, pid: int, count: int, last: int) -> int:
        """A continuity counter that is not the next one: what to remember for the PID.

        A first repetition is legal (a duplicate packet) and is remembered as
        ``count + 16``, so that a second one is not.
        """
        if last < 0:
            return count  # the PID's first packet
        if count == last & 0x0F:
            if last < 16:
                return count + 16
        elif chunk[offset + 3] & 0x20 and chunk[offset + 4] and chunk[offset + 5] & 0x80:
            return count  # discontinuity_indicator: a new count is announced
        self.errors["Continuity_count_error"] += 1
        self.cc_errors[pid] += 1
        return count

    def _time(self, now: float) -> float:
        """What PAT and PMT repetition is judged on: the stream's clock, else arrival."""
        return now if self._clock is None else self._clock

    def _restart_psi_timers(self, time: float) -> None:
        """The PAT and PMT timers moved to another clock, counting from ``time``."""
        self._pat_at = time
        self._pmt_at = dict.fromkeys(self._pmt_at, time)

    def _tick(self, pcr: int) -> None:
        """The clock PID's PCR: the stream's clock moves on, and may find a PAT or PMT late."""
        if self._clock is None:
            self._clock = 0.0
            self._restart_psi_timers(0.0)
        else:
            step = (pcr - self._clock_pcr) % PCR_WRAP / PCR_HZ
            if step <= PCR_JUMP:
                self._clock += step
        self._clock_pcr = pcr
        self._check_psi(self._clock)

    def _check_psi(self, time: float) -> None:
        if time - self._pat_at > PAT_TIMEOUT and not self._pat_late:
            self._pat_late = True
            self.errors["PAT_error"] += 1
        late = self._late
        for pid, seen in self._pmt_at.items():
            if time - seen > PMT_TIMEOUT and pid not in late:
                late.add(pid)
                self.errors["PMT_error"] += 1

    def _check_pids(self, now: float, highs: bytes, lows: bytes) -> None:
        late = self._late
        if self._listed:
            present = set(zip(highs, lows))
            seen_at = self._seen_at
            for pid in self._listed:
                if (pid >> 8, pid & 0xFF) in present:
                    seen_at[pid] = now
                    late.discard(pid)
                elif now - seen_at.get(pid, now) > self.pid_timeout and pid not in late:
                    late.add(pid)
                    self.errors["PID_error"] += 1

    def _read_watched(self, chunk: bytes, offsets: list[int], now: float) -> None:
        """The PAT, PMT and PCR packets of a chunk."""
        for offset in offsets:
            pid = (chunk[offset + 1] & 0x1F) << 8 | chunk[offset + 2]
            if pid in self._pcr_pids and chunk[offset + 3] & 0x20 and chunk[offset + 4] >= 7 \
                    and chunk[offset + 5] & 0x10:
                self._pcr_at[pid] = now
                if pid == self._clock_pid:
                    self._tick(read_pcr(chunk, offset + 6))
            if pid != PAT_PID and pid not in self._pmt_pids:
                continue
            if chunk[offset + 3] & 0xC0:  # transport_scrambling_control: PSI is never scrambled
                self.errors["PAT_error" if pid == PAT_PID else "PMT_error"] += 1
                continue
            assembler = self._assemblers.get(pid)
            if assembler is None:
                assembler = self._assemblers[pid] = SectionAssembler()
            for section in assembler.feed(chunk, offset):
                if pid == PAT_PID:
                    self._read_pat(section, now)
                elif section[0] == TABLE_PMT:
                    self._read_pmt(pid, section, now)

    def _read_pat(self, section: bytes, now: float) -> None:
        if section[0] != TABLE_PAT:
            self.errors["PAT_error"] += 1
            return
        if section != self._pat_section:
            try:
                pat = parse_pat(section)
            except SectionError:
                return  # a CRC error (TR 101 290 2.2), not a PAT
            self._pat_section = section
            self._pmt_pids = {pmt_pid: number for number, pmt_pid in pat.programs.items()}
            self._pmt_at = {pid: self._pmt_at.get(pid, self._time(now)) for pid in self._pmt_pids}
            for gone in set(self.pmts) - set(self._pmt_pids):
                del self.pmts[gone]
            self._programs_changed(now)
        self._pat_at = self._time(now)
        self._pat_late = False

    def _read_pmt(self, pid: int, section: bytes, now: float) -> None:
        if section != self._pmt_sections.get(pid):
            try:
                pmt = parse_pmt(section)
            except SectionError:
                return
            self._pmt_sections[pid] = section
            self.pmts[pid] = pmt
            self._programs_changed(now)
        self._pmt_at[pid] = self._time(now)
        self._late.discard(pid)

    def _programs_changed(self, now: float) -> None:
        self._listed = {s.pid: s.stream_type for pmt in self.pmts.values() for s in pmt.streams}
        self._seen_at = {pid: self._seen_at.get(pid, now) for pid in self._listed}
        self._pcr_pids = frozenset(pmt.pcr_pid for pmt in self.pmts.values())
        clock_pid = min(((pmt.program_number, pmt.pcr_pid) for pmt in self.pmts.values()
                         if pmt.pcr_pid != NULL_PID), default=(0, None))[1]
        if clock_pid != self._clock_pid:
            self._clock_pid = clock_pid
            if self._clock is not None:  # another program's clock: start it afresh
                self._clock = None
                self._restart_psi_timers(now)
        self._watch = frozenset((PAT_PID, *self._pmt_pids, *self._pcr_pids))
        video = next((pmt.video for pmt in self.pmts.values() if pmt.video is not None), None)
        self._video = (video.pid, video.codec) if video is not None else None

    def _find_keyframes(self, chunk: bytes, now: float) -> None:
        pid, codec = self._video  # type: ignore[misc]
        for offset in unit_starts(chunk, pid):
            if is_rap(chunk, offset, codec):
                if self._rap_at is not None and now > self._rap_at:
                    self._rap_intervals.append(now - self._rap_at)
                self._rap_at = now
                self.picture = picture_size(payload(chunk, offset), codec) or self.picture

    def _measure_rates(self, now: float) -> None:
        elapsed = now - self._rate_at
        current = self.packets
        base = self._rate_base
        scale = PACKET_SIZE * 8 / elapsed
        self.rates = {high << 8 | low: (count - base[high, low]) * scale
                      for (high, low), count in current.items() if count > base[high, low]}
        self._rate_base = collections.Counter(current)
        self._rate_at = now

    # -- output ------------------------------------------------------------

    def _sync_totals(self) -> tuple[int, int]:
        losses, skipped = self._sync_before
        if self._aligner is not None:
            losses += self._aligner.losses
            skipped += self._aligner.skipped
        return losses, skipped

    def error_counts(self) -> dict[str, int]:
        """The TR 101 290 priority-1 error counts since start."""
        losses, _ = self._sync_totals()
        return dict(self.errors, TS_sync_loss=losses, Sync_byte_error=losses)

    def current_rates(self, now: float) -> dict[int, float]:
        """Bits per second of each PID over the last interval; none once data stops coming."""
        return self.rates if now - self._rate_at <= 2 * RATE_INTERVAL else {}

    def bitrate(self, now: float) -> float:
        """Bits per second of the whole stream over the last interval."""
        return sum(self.current_rates(now).values())

    def keyframe_interval(self) -> float | None:
        intervals = self._rap_intervals
        return sum(intervals) / len(intervals) if intervals else None

    def snapshot(self, now: float) -> dict:
        """Every figure, as the statistics API reports it."""
        _, skipped = self._sync_totals()
        rates = self.current_rates(now)
        programs = []
        for pmt_pid, pmt in sorted(self.pmts.items(), key=lambda item: item[1].program_number):
            pcr_at = self._pcr_at.get(pmt.pcr_pid)
            programs.append({
                "program": pmt.program_number,
                "pmt_pid": pmt_pid,
                "pcr_pid": pmt.pcr_pid,
                "pcr": pcr_at is not None and now - pcr_at <= PCR_TIMEOUT,
                "streams": [{"pid": s.pid, "codec": s.codec, "kind": s.kind,
                             "bitrate": round(rates.get(s.pid, 0.0)),
                             "continuity_errors": self.cc_errors[s.pid]} for s in pmt.streams],
            })
        interval = self.keyframe_interval()
        return {
            "errors": self.error_counts(),
            "skipped_bytes": skipped,
            "bitrate": round(sum(rates.values())),
            "pids": {str(pid): {"bitrate": round(rate), "continuity_errors": self.cc_errors[pid]}
                     for pid, rate in sorted(rates.items())},
            "programs": programs,
            "resolution": "{}x{}".format(*self.picture) if self.picture else None,
            "keyframe_interval": round(interval, 3) if interval is not None else None,
            "keyframe_age": round(now - self._rap_at, 3) if self._rap_at is not None else None,
        }
