"""Picture size of a video elementary stream, read from its sequence headers.

H.264: the sequence parameter set (ISO 14496-10 7.3.2.1.1), cropping
applied; MPEG-1/2 video: the sequence header.  Read from the first TS
payload of a keyframe's PES packet, where encoders put them; pure bytes, and
only when a keyframe is found, so it costs nothing per packet.
"""

from __future__ import annotations

_START = b"\x00\x00\x01"
#: H.264 profiles whose SPS carries chroma format, bit depths and scaling lists.
_HIGH_PROFILES = frozenset((100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135))


class _Bits:
    """An MSB-first bit reader with Exp-Golomb codes, over an RBSP."""

    __slots__ = ("value", "left")

    def __init__(self, data: bytes):
        self.value = int.from_bytes(data, "big")
        self.left = len(data) * 8

    def u(self, n: int) -> int:
        if n > self.left:
            raise ValueError("truncated")
        self.left -= n
        return self.value >> self.left & ((1 << n) - 1)

    def ue(self) -> int:
        zeros = 0
        while not self.u(1):
            zeros += 1
            if zeros > 31:
                raise ValueError("bad Exp-Golomb code")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def _rbsp(nal: bytes) -> bytes:
    """A NAL unit's payload without its emulation-prevention bytes (00 00 03 -> 00 00)."""
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


def h264_sps_size(sps: bytes) -> tuple[int, int] | None:
    """(width, height) from an H.264 SPS NAL unit (its header byte first), or None."""
    try:
        bits = _Bits(_rbsp(sps[1:]))
        profile = bits.u(8)
        bits.u(16)  # constraint flags, level
        bits.ue()  # seq_parameter_set_id
        chroma = 1
        if profile in _HIGH_PROFILES:
            chroma = bits.ue()
            if chroma == 3:
                bits.u(1)  # separate_colour_plane_flag
            bits.ue(), bits.ue()  # bit depths
            bits.u(1)  # qpprime_y_zero_transform_bypass_flag
            if bits.u(1):  # seq_scaling_matrix_present_flag
                for i in range(8 if chroma != 3 else 12):
                    if bits.u(1):
                        _skip_scaling_list(bits, 16 if i < 6 else 64)
        bits.ue()  # log2_max_frame_num_minus4
        poc_type = bits.ue()
        if poc_type == 0:
            bits.ue()
        elif poc_type == 1:
            bits.u(1)
            bits.se(), bits.se()
            for _ in range(bits.ue()):
                bits.se()
        bits.ue()  # max_num_ref_frames
        bits.u(1)  # gaps_in_frame_num_value_allowed_flag
        width_mbs = bits.ue() + 1
        height_units = bits.ue() + 1
        frame_mbs_only = bits.u(1)
        if not frame_mbs_only:
            bits.u(1)  # mb_adaptive_frame_field_flag
        bits.u(1)  # direct_8x8_inference_flag
        left = right = top = bottom = 0
        if bits.u(1):  # frame_cropping_flag
            left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
    except ValueError:
        return None
    sub_width, sub_height = {0: (1, 1), 1: (2, 2), 2: (2, 1)}.get(chroma, (1, 1))
    crop_x = 1 if chroma == 0 else sub_width
    crop_y = (2 - frame_mbs_only) * (1 if chroma == 0 else sub_height)
    width = width_mbs * 16 - crop_x * (left + right)
    height = (2 - frame_mbs_only) * height_units * 16 - crop_y * (top + bottom)
    return (width, height) if width > 0 and height > 0 else None


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last = following = 8
    for _ in range(size):
        if following:
            following = (last + bits.se() + 256) % 256
        last = following or last


def picture_size(data: bytes, codec: str) -> tuple[int, int] | None:
    """(width, height) from the sequence header in an elementary stream's ``data``, if any."""
    if codec in ("mpeg1video", "mpeg2video"):
        at = data.find(b"\x00\x00\x01\xb3")
        if at < 0 or len(data) < at + 7:
            return None
        size = int.from_bytes(data[at + 4:at + 7], "big")
        return (size >> 12, size & 0xFFF) or None
    if codec != "h264":
        return None
    at = data.find(_START)
    while 0 <= at < len(data) - 3:
        end = data.find(_START, at + 3)
        if data[at + 3] & 0x1F == 7:
            return h264_sps_size(data[at + 3:end if end >= 0 else len(data)])
        at = end
    return None
