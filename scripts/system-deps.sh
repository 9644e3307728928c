#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages that tests and the demo use, when missing.
set -euo pipefail
need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto mosquitto-clients)
command -v mosquitto_sub >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# Headless OpenGL for the avatar renderer (moderngl on EGL; Mesa's llvmpipe where there is no GPU).
for pkg in libegl1 libegl-mesa0 libgl1-mesa-dri; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
# Real photos the avatar scenes use as backgrounds.
[ -d /usr/share/doc/opencv-doc/examples/data ] || need+=(opencv-doc)
# The RTSP camera tests' server: gst-rtsp-server through PyGObject on the system python3 (JPEG over RTP).
for pkg in python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-plugins-base gstreamer1.0-plugins-good; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "missing system packages: ${need[*]} — install them with: sudo apt-get install ${need[*]}" >&2
    exit 1
fi
echo "installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
