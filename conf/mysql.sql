-- Schema of the message daemon's MySQL storage (docs/protocol.md §7), one copy per
-- shard database listed in [mysql.source]. Compatible with the table of
-- gopush-cluster 1.0.5: same name, columns and keys. skey has a binary
-- collation: keys that differ only in case are different subscribers (as on
-- Redis), so one must never read the other's messages. A table created by
-- 1.0.5 with the default collation can be converted in place:
--   ALTER TABLE private_msg MODIFY skey varchar(64)
--     CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
CREATE TABLE IF NOT EXISTS private_msg (
  id    bigint unsigned NOT NULL AUTO_INCREMENT,
  skey  varchar(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, -- the subscriber's key
  mid   bigint unsigned NOT NULL,            -- message id, 100 ns units since the Unix epoch
  ttl   bigint          NOT NULL,            -- unix time (seconds) at which the message expires
  msg   blob            NOT NULL,            -- the message JSON, at most 65535 bytes
  ctime timestamp       NOT NULL DEFAULT CURRENT_TIMESTAMP,
  mtime timestamp       NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (id),
  UNIQUE KEY ux_private_msg_skey_mid (skey, mid),
  KEY ix_private_msg_ttl (ttl)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Rooms (docs/rooms.md): one row per key of a room, on the shard that the
-- ring over the shard names picks for the room id. Binary collation: keys
-- and room ids are case-sensitive, as on Redis.
CREATE TABLE IF NOT EXISTS room_key (
  rid   varchar(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, -- room id
  skey  varchar(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, -- a key of the room
  ctime timestamp   NOT NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (rid, skey)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Public messages (push/all with expire > 0), the newest public.store of
-- them, on the shard that the ring picks for the name public.key.
CREATE TABLE IF NOT EXISTS public_msg (
  mid   bigint unsigned NOT NULL,            -- message id, 100 ns units since the Unix epoch
  ttl   bigint          NOT NULL,            -- unix time (seconds) at which the message expires
  msg   blob            NOT NULL,            -- the message JSON, at most 65535 bytes
  ctime timestamp       NOT NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (mid),
  KEY ix_public_msg_ttl (ttl)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
