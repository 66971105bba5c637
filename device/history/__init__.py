"""Emotions over time: the recorder behind `emotion-edge listen --record` (store.py, recorder.py) and the
`emotion-edge report` figures (report.py, which alone needs matplotlib, imported only when a report is drawn).

Imports mqtt/listen (the subscriber) and errors; nothing of the camera loop.
"""
