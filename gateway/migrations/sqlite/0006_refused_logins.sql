-- A refused login used to take a device that nothing else ever spoke for offline
-- ("refused_login") and open a problem at the station: anyone can send a CONNECT naming any
-- device id, so it was never the device's doing. Such a device is set back to never seen and
-- its problem closed as of its last change; refused logins are only counted from now on.
UPDATE device_problems SET closed_at_ms = updated_at_ms
 WHERE kind = 'offline' AND closed_at_ms IS NULL AND device IN (
     SELECT id FROM devices
      WHERE sup_state = 'offline' AND sup_reason = 'refused_login' AND evidence_ms IS NULL);
UPDATE devices SET sup_state = 'never_seen', sup_reason = NULL, sup_since_ms = NULL
 WHERE sup_state = 'offline' AND sup_reason = 'refused_login' AND evidence_ms IS NULL;
