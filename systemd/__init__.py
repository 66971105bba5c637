"""The service side of emotion-edge: the systemd unit and Pi installer (package data), and the workstation's
`deploy`, `retrain` and `install` commands that put new models on devices without leaving one broken."""
