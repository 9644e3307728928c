#!/usr/bin/env bash
# Applies NVPMODEL_MODE, JETSON_CLOCKS and FAN_PWM from /etc/edgescreen/jetson.conf (via the unit's
# EnvironmentFile). Each step is skipped, with a message, where the board lacks the tool or node.
set -uo pipefail
if [ -n "${NVPMODEL_MODE:-}" ]; then
    if command -v nvpmodel >/dev/null; then
        nvpmodel -m "$NVPMODEL_MODE" && echo "nvpmodel mode $NVPMODEL_MODE"
    else
        echo "nvpmodel not found: power mode left as is"
    fi
fi
if [ "${JETSON_CLOCKS:-0}" = 1 ]; then
    if command -v jetson_clocks >/dev/null; then jetson_clocks && echo "clocks locked at maximum"; else echo "jetson_clocks not found"; fi
fi
if [ -n "${FAN_PWM:-}" ]; then
    node=$(ls /sys/devices/platform/pwm-fan/hwmon/hwmon*/pwm1 /sys/devices/pwm-fan/target_pwm 2>/dev/null | head -1)
    if [ -n "$node" ]; then echo "$FAN_PWM" > "$node" && echo "fan pwm $FAN_PWM"; else echo "no fan node: fan left as is"; fi
fi
exit 0
