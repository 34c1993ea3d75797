#!/usr/bin/env bash
# Regenerate restreamer/data/sample.ts: the small bundled MPEG-TS stream the
# proxy's tests (and demos) loop as an upstream.
#
# ~6 s of testsrc2 640x360@25 H.264 (keyframe every second so a viewer joining
# at any point is never more than 1 s from a decodable picture) plus a sine-wave
# AAC track, muxed CBR with PAT/PMT/PCR like a real broadcast feed.
set -euo pipefail

out="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/restreamer/data/sample.ts}"

# Prefer libx264; otherwise take the first H.264 encoder ffmpeg lists.
# (The list is captured first: grep -q closing the pipe early would make
# ffmpeg die of SIGPIPE and pipefail abort the script.)
encoders=$(ffmpeg -hide_banner -encoders 2>/dev/null)
if grep -qw libx264 <<<"$encoders"; then
    venc=(-c:v libx264 -preset veryfast -tune zerolatency -x264-params "nal-hrd=cbr")
else
    enc=$(awk '$1 ~ /^V/ && /\(codec h264\)/ {print $2; exit}' <<<"$encoders")
    [ -n "$enc" ] || { echo "no H.264 encoder in ffmpeg" >&2; exit 1; }
    venc=(-c:v "$enc")
fi

ffmpeg -hide_banner -loglevel error -y \
    -f lavfi -i "testsrc2=size=640x360:rate=25" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000" \
    -t 6 \
    "${venc[@]}" -pix_fmt yuv420p -profile:v main \
    -b:v 700k -maxrate 700k -minrate 700k -bufsize 700k \
    -g 25 -keyint_min 25 -sc_threshold 0 \
    -c:a aac -b:a 64k -ac 2 \
    -f mpegts -muxrate 900k -pcr_period 20 -mpegts_flags +resend_headers \
    "$out"

size=$(stat -c %s "$out")
if (( size % 188 != 0 )); then
    echo "$out: size $size is not a multiple of 188" >&2
    exit 1
fi
# Top-level stream sections only (ffprobe repeats them under each program).
streams=$(ffprobe -v error -show_entries stream=codec_name -of flat "$out" \
    | sed -n 's/^streams\.stream\.[0-9]*\.codec_name="\(.*\)"$/\1/p' | sort | tr '\n' ' ')
if [ "$streams" != "aac h264 " ]; then
    echo "$out: unexpected streams: $streams" >&2
    exit 1
fi
echo "$out: $size bytes, streams: $streams"
