#!/usr/bin/env bash
# Lays out EdgeScreen on a Debian/Ubuntu/JetPack host: a system user, a venv in /opt/edgescreen,
# configuration in /etc/edgescreen, udev rules and systemd units.
#
#   sudo scripts/install.sh [--component device|collector|all] [--no-venv]
#
# DESTDIR=/some/root lays the files out under that root without touching users or systemd
# (packaging and tests). Re-running upgrades in place and never overwrites an edited profile.
set -euo pipefail

SRC="$(cd "$(dirname "$0")/.." && pwd)"
DESTDIR="${DESTDIR:-}"
PREFIX="${PREFIX:-/opt/edgescreen}"
ETC="${ETC:-/etc/edgescreen}"
COMPONENT=all
MAKE_VENV=1
PYTHON="${PYTHON:-python3}"

while [ $# -gt 0 ]; do
    case "$1" in
        --component) COMPONENT="$2"; shift 2 ;;
        --no-venv) MAKE_VENV=0; shift ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
case "$COMPONENT" in device|collector|all) ;; *) echo "install.sh: --component must be device, collector or all" >&2; exit 2 ;; esac

live() { [ -z "$DESTDIR" ]; }
say() { echo "install: $*"; }

if live && [ "$(id -u)" -ne 0 ]; then
    echo "install.sh must run as root (or set DESTDIR to lay files out elsewhere)" >&2
    exit 1
fi

if live && ! id edgescreen >/dev/null 2>&1; then
    say "creating system user edgescreen"
    useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin --user-group edgescreen
    for g in video render; do getent group "$g" >/dev/null && usermod -aG "$g" edgescreen; done
fi

install -d -m 0755 "$DESTDIR$PREFIX" "$DESTDIR$PREFIX/scripts" "$DESTDIR$PREFIX/docs"
install -d -m 0755 "$DESTDIR$ETC" "$DESTDIR$ETC/profiles"
install -d -m 0700 "$DESTDIR$ETC/credentials" "$DESTDIR$ETC/pki"
install -d -m 0755 "$DESTDIR/etc/systemd/system" "$DESTDIR/etc/udev/rules.d"

install -m 0755 "$SRC/scripts/jetson-setup.sh" "$DESTDIR$PREFIX/scripts/jetson-setup.sh"
[ -d "$SRC/docs" ] && cp -r "$SRC/docs/." "$DESTDIR$PREFIX/docs/"

if [ "$COMPONENT" != collector ]; then
    for p in "$SRC"/firmware_config/profiles/*.yaml; do
        dest="$DESTDIR$ETC/profiles/$(basename "$p")"
        if [ -e "$dest" ]; then say "keeping edited $dest"; else install -m 0644 "$p" "$dest"; fi
    done
    [ -e "$DESTDIR$ETC/jetson.conf" ] || install -m 0644 "$SRC/firmware_config/jetson/jetson.conf" "$DESTDIR$ETC/jetson.conf"
    install -m 0644 "$SRC/firmware_config/udev/99-edgescreen-camera.rules" "$DESTDIR/etc/udev/rules.d/"
    for u in edgescreen-edge@.service edgescreen-engine@.service edgescreen-jetson-setup.service; do
        install -m 0644 "$SRC/systemd/$u" "$DESTDIR/etc/systemd/system/$u"
    done
    # Drop-ins of particular roles (the gait booth reads student codes on its console).
    for d in "$SRC"/systemd/*.service.d; do
        install -d -m 0755 "$DESTDIR/etc/systemd/system/$(basename "$d")"
        install -m 0644 "$d"/*.conf "$DESTDIR/etc/systemd/system/$(basename "$d")/"
    done
fi
if [ "$COMPONENT" != device ]; then
    [ -e "$DESTDIR$ETC/alert-rules.yaml" ] || install -m 0644 "$SRC/firmware_config/alert-rules.example.yaml" "$DESTDIR$ETC/alert-rules.yaml"
    [ -e "$DESTDIR$ETC/collector.env" ] || install -m 0644 "$SRC/firmware_config/collector.env.example" "$DESTDIR$ETC/collector.env"
    # The unit loads these as credentials: made once, kept on upgrade (a new session key logs every user out).
    install -d -m 0700 "$DESTDIR$ETC/credentials/collector"
    for secret in session-key webhook-secret; do
        f="$DESTDIR$ETC/credentials/collector/$secret"
        [ -e "$f" ] || (umask 077 && head -c 32 /dev/urandom | base64 > "$f")
    done
    install -d -m 0755 "$DESTDIR/etc/mosquitto/conf.d"
    install -m 0644 "$SRC/firmware_config/mosquitto/edgescreen.conf" "$DESTDIR/etc/mosquitto/conf.d/edgescreen.conf.example"
    install -m 0644 "$SRC/systemd/edgescreen-collector.service" "$DESTDIR/etc/systemd/system/"
fi
for u in edgescreen-maintenance.service edgescreen-maintenance.timer edgescreen-maintenance-crl.service; do
    install -m 0644 "$SRC/systemd/$u" "$DESTDIR/etc/systemd/system/$u"
done

if [ "$MAKE_VENV" = 1 ]; then
    extras=edge
    [ "$COMPONENT" = collector ] && extras=collector
    [ "$COMPONENT" = all ] && extras=edge,collector
    say "installing the Python package ($extras) into $PREFIX/venv"
    "$PYTHON" -m venv "$DESTDIR$PREFIX/venv"
    "$DESTDIR$PREFIX/venv/bin/pip" install -q -c "$SRC/constraints.txt" "$SRC[$extras]"
fi

if live; then
    udevadm control --reload-rules 2>/dev/null || true
    systemctl daemon-reload
    say "enable a device with: systemctl enable --now edgescreen-edge@office-posture.service"
    say "collector: put its certificate, key and the site CA in $ETC/credentials/collector/ and edit $ETC/collector.env (docs/deploy.md)"
    say "enable the collector with: systemctl enable --now edgescreen-collector.service"
fi
say "done"
