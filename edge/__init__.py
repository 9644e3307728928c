"""The device runtime: camera → perception → role analyzer → anonymised scores → outbox → MQTT.

Never imports torch, the collector or export.
"""
