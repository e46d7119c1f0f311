"""Event clips on the device (docs/clips.md): a ring of H.264 segments, one MP4 per visit.

- ``encoder``: the ClipEncoder port (PyAV libx264, picamera2's hardware H264Encoder).
- ``ring``: segment files on the SD card, bounded by seconds.
- ``cut``: the segments around a visit remuxed into one MP4, without re-encoding.
- ``store``: the clip index (SQLite), the byte budget and the repair after a power cut.
- ``recorder``: the thread that ties them to the capture loop and its events.
"""
