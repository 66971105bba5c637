"""Displays for people standing at the device: the HDMI preview and the small I2C OLED.

Each display is optional, reads the daemon's `LiveState` on its own thread at a
bounded rate (so it can never slow the camera loop), and is disabled, with one
log line saying why, when its hardware is absent or it fails.
"""
