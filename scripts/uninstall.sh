#!/usr/bin/env bash
# Removes what install.sh laid out. Keeps /etc/edgescreen (profiles, credentials, PKI) and state
# (/var/lib/edgescreen: outboxes and the collector database) unless --purge is given.
set -euo pipefail
DESTDIR="${DESTDIR:-}"
PREFIX="${PREFIX:-/opt/edgescreen}"
ETC="${ETC:-/etc/edgescreen}"
PURGE=0
[ "${1:-}" = "--purge" ] && PURGE=1

if [ -z "$DESTDIR" ]; then
    [ "$(id -u)" -eq 0 ] || { echo "uninstall.sh must run as root" >&2; exit 1; }
    systemctl disable --now 'edgescreen-edge@*.service' edgescreen-collector.service edgescreen-maintenance.timer 2>/dev/null || true
fi
for u in edgescreen-edge@.service edgescreen-engine@.service edgescreen-jetson-setup.service \
         edgescreen-collector.service edgescreen-maintenance.service edgescreen-maintenance.timer \
         edgescreen-maintenance-crl.service; do
    rm -f "$DESTDIR/etc/systemd/system/$u"
done
rm -rf "$DESTDIR/etc/systemd/system/edgescreen-edge@gait-booth.service.d"
rm -f "$DESTDIR/etc/udev/rules.d/99-edgescreen-camera.rules" "$DESTDIR/etc/mosquitto/conf.d/edgescreen.conf.example"
rm -rf "$DESTDIR$PREFIX"
if [ "$PURGE" = 1 ]; then
    rm -rf "$DESTDIR$ETC" "$DESTDIR/var/lib/edgescreen" "$DESTDIR/var/cache/edgescreen"
    [ -z "$DESTDIR" ] && userdel edgescreen 2>/dev/null || true
fi
[ -z "$DESTDIR" ] && systemctl daemon-reload || true
echo "uninstall: done"
