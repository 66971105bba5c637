#!/usr/bin/env bash
# Install (or remove) emotion-edge as a boot-time service on a Raspberry Pi. Safe to run again: every step
# checks before it acts, an existing config is never overwritten (a new one gets this machine's device_id),
# models are kept unless --purge, and an uninstall first clears the device's retained topics on its broker.
#
#   sudo systemd/install.sh [--deploy-user pi] [--no-start]
#   sudo systemd/install.sh --uninstall [--purge]
#
# --root DIR installs into DIR instead of / (tests, image builds): the system user, group changes, apt and
# systemctl are skipped there, because they act on the running system, not on files.
set -euo pipefail

SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT=""
PREFIX=/opt/emotion-edge
SERVICE_USER=emotion-edge
DEPLOY_USER="${SUDO_USER:-}"
EMOTION_EDGE=""  # the emotion-edge command that seeds the model folder; default: the venv's
UNINSTALL=0
PURGE=0
START=1
VENV=1
DEVICE_GROUPS="video render i2c gpio spi"

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
say() { echo "emotion-edge install: $*"; }
die() { echo "emotion-edge install: error: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --source) SOURCE="$2"; shift 2 ;;
        --root) ROOT="${2%/}"; shift 2 ;;
        --prefix) PREFIX="$2"; shift 2 ;;
        --user) SERVICE_USER="$2"; shift 2 ;;
        --deploy-user) DEPLOY_USER="$2"; shift 2 ;;
        --emotion-edge) EMOTION_EDGE="$2"; shift 2 ;;
        --no-venv) VENV=0; shift ;;
        --no-start) START=0; shift ;;
        --uninstall) UNINSTALL=1; shift ;;
        --purge) PURGE=1; shift ;;
        -h|--help) usage 0 ;;
        *) echo "unknown option: $1" >&2; usage 2 ;;
    esac
done

LIVE=1  # acting on the running system (users, systemctl) rather than on a folder
[ -n "$ROOT" ] && LIVE=0
[ "$LIVE" -eq 0 ] || [ "$(id -u)" -eq 0 ] || die "run as root (sudo $0), or give --root DIR"
[ "$PURGE" -eq 0 ] || [ "$UNINSTALL" -eq 1 ] || die "--purge only goes with --uninstall"

UNIT="$ROOT/etc/systemd/system/emotion-edge.service"
CONFIG_DIR="$ROOT/etc/emotion-edge"
STATE_DIR="$ROOT/var/lib/emotion-edge"
MODELS="$STATE_DIR/models"
VENV_DIR="$ROOT$PREFIX/venv"
EMOTION_EDGE="${EMOTION_EDGE:-$VENV_DIR/bin/emotion-edge}"

systemctl_live() { [ "$LIVE" -eq 1 ] && systemctl "$@"; }

uninstall() {
    if [ "$LIVE" -eq 1 ] && systemctl list-unit-files emotion-edge.service >/dev/null 2>&1; then
        systemctl disable --now emotion-edge.service 2>/dev/null || true
    fi
    forget_on_broker
    rm -f "$UNIT"
    systemctl_live daemon-reload || true
    rm -rf "${ROOT}${PREFIX:?}"
    say "removed the service and $PREFIX"
    if [ "$PURGE" -eq 1 ]; then
        rm -rf "$CONFIG_DIR" "$STATE_DIR"
        if [ "$LIVE" -eq 1 ] && id "$SERVICE_USER" >/dev/null 2>&1; then userdel "$SERVICE_USER"; fi
        say "purged config, models and the $SERVICE_USER user"
    else
        say "kept $CONFIG_DIR and $STATE_DIR (use --uninstall --purge to remove them)"
    fi
}

# The daemon is stopped: clear its Home Assistant entities and retained topics on the broker, while the venv that
# can is still there. A broker out of reach does not stop the uninstall; the message says how to do it later.
forget_on_broker() {
    [ -f "$CONFIG_DIR/config.toml" ] && [ -x "$EMOTION_EDGE" ] || return 0
    if ! "$EMOTION_EDGE" forget --config "$CONFIG_DIR/config.toml" --state-dir "$STATE_DIR"; then
        say "could not clear this device's retained MQTT topics; later, from any machine with emotion-edge:" \
            "emotion-edge forget --config $CONFIG_DIR/config.toml"
    fi
}

# The device id this machine gets by default (hostname and a hash of /etc/machine-id), written into the new
# config so that it stays the same when the hostname changes later; none from an image without a machine id yet.
machine_device_id() {
    "$EMOTION_EDGE" device-id --root "${ROOT:-/}" 2>/dev/null || true
}

create_user() {
    [ "$LIVE" -eq 1 ] || return 0
    if ! id "$SERVICE_USER" >/dev/null 2>&1; then
        useradd --system --user-group --home-dir /var/lib/emotion-edge --no-create-home \
                --shell /usr/sbin/nologin "$SERVICE_USER"
        say "created system user $SERVICE_USER"
    fi
    # Only the groups this Pi has: the camera (video), the GPU's DRM nodes (render), I2C/SPI displays and GPIO.
    local group
    for group in $DEVICE_GROUPS; do
        if getent group "$group" >/dev/null; then usermod -aG "$group" "$SERVICE_USER"; fi
    done
    if [ -n "$DEPLOY_USER" ] && [ "$DEPLOY_USER" != root ] && id "$DEPLOY_USER" >/dev/null 2>&1; then
        usermod -aG "$SERVICE_USER" "$DEPLOY_USER"  # may write new models; see systemd/README.md
    fi
}

create_venv() {
    [ "$VENV" -eq 1 ] || return 0
    if [ "$LIVE" -eq 1 ] && command -v apt-get >/dev/null && ! dpkg -s python3-venv >/dev/null 2>&1; then
        apt-get install -y python3-venv
    fi
    if [ "$LIVE" -eq 1 ] && command -v apt-get >/dev/null && apt-cache show python3-picamera2 >/dev/null 2>&1 \
            && ! dpkg -s python3-picamera2 >/dev/null 2>&1; then
        apt-get install -y python3-picamera2
    fi
    # System site packages: picamera2 and libcamera come from Raspberry Pi OS, not from PyPI.
    [ -x "$VENV_DIR/bin/python" ] || python3 -m venv --system-site-packages "$VENV_DIR"
    "$VENV_DIR/bin/pip" install -q "$SOURCE"
    say "venv ready: $VENV_DIR"
}

install_config() {
    install -d -m 0755 "$CONFIG_DIR"
    if [ -e "$CONFIG_DIR/config.toml" ]; then
        say "kept existing $CONFIG_DIR/config.toml"
    else
        install -m 0644 "$SOURCE/examples/config.toml" "$CONFIG_DIR/config.toml"
        local id
        id="$(machine_device_id)"
        if [ -n "$id" ]; then
            # The example's commented `# device_id = "hall"` line becomes this machine's id ([a-z0-9_-], safe in sed).
            sed -i "s|^# device_id = \"hall\"\$|device_id = \"$id\"  # written by the installer (hostname, machine-id)|" \
                "$CONFIG_DIR/config.toml"
            say "device id $id written into the config"
        fi
        say "wrote $CONFIG_DIR/config.toml from examples/config.toml; edit it, then: systemctl restart emotion-edge"
    fi
}

install_models() {
    install -d -m 0755 "$STATE_DIR"
    # setgid + group-writable: the deploy user (in the service's group) adds models, the service reads them.
    install -d -m 2775 "$MODELS"
    if [ "$LIVE" -eq 1 ]; then chown "$SERVICE_USER:$SERVICE_USER" "$STATE_DIR" "$MODELS"; fi
    # Seed `current` with the model shipped in the package, once; deploys replace it later.
    [ -x "$EMOTION_EDGE" ] || die "$EMOTION_EDGE not found (install the venv first or pass --emotion-edge)"
    # A one-line config naming this folder: the installed config may point elsewhere, or (with --root) at /.
    local config
    config="$(mktemp)"
    printf '[model]\npath = "%s/current"\n' "$MODELS" > "$config"
    "$EMOTION_EDGE" device-model --config "$config" adopt --activate --if-no-current >/dev/null \
        || { rm -f "$config"; die "could not seed $MODELS with the shipped model"; }
    rm -f "$config"
    say "models: $MODELS/current -> $(readlink "$MODELS/current")"
}

install_unit() {
    install -d -m 0755 "$(dirname "$UNIT")"
    local tmp="$UNIT.tmp"
    sed "s#/opt/emotion-edge/venv/bin/emotion-edge#$PREFIX/venv/bin/emotion-edge#" \
        "$SOURCE/systemd/emotion-edge.service" > "$tmp"
    if [ -n "$SERVICE_USER" ] && [ "$SERVICE_USER" != emotion-edge ]; then
        sed -i "s/^User=emotion-edge$/User=$SERVICE_USER/; s/^Group=emotion-edge$/Group=$SERVICE_USER/" "$tmp"
    fi
    chmod 0644 "$tmp"
    mv -f "$tmp" "$UNIT"
    systemctl_live daemon-reload || true
    if [ "$LIVE" -eq 1 ]; then
        systemctl enable emotion-edge.service
        # restart, not start: a second run (an upgrade) must pick up the new code.
        if [ "$START" -eq 1 ]; then systemctl restart emotion-edge.service; fi
    fi
    say "unit: $UNIT"
}

if [ "$UNINSTALL" -eq 1 ]; then
    uninstall
    exit 0
fi
[ -f "$SOURCE/examples/config.toml" ] && [ -f "$SOURCE/systemd/emotion-edge.service" ] \
    || die "$SOURCE is not an emotion-edge checkout (no examples/config.toml or systemd/emotion-edge.service)"
create_user
create_venv
install_config
install_models
install_unit
say "done. Status: systemctl status emotion-edge; logs: journalctl -u emotion-edge -f"
