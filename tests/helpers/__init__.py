"""What the tests share: real peers (mosquitto, sshd, the HTTP server), synthetic data and fixture scenes."""
