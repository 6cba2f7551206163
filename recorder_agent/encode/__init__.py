"""Encode: LiveKit frames to H.264 and AAC packets, on a fixed canvas."""
