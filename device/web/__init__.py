"""The device's small HTTP server: the analyze API (upload an image, get its faces' emotions) and the network
preview (MJPEG stream, status page, live state JSON).

Named `web` rather than `http` so it never reads as the standard library's `http`. This `__init__` and
`web.config` import no web framework: `device/config/` imports `web.config`, and `emotion-edge analyze`
should not load Starlette or uvicorn.
"""
