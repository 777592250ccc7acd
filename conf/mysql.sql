-- Schema of the message daemon's MySQL storage (SPEC §7), one copy per
-- shard database listed in [mysql.source]. Compatible with the table of
-- gopush-cluster 1.0.5: same name, columns and keys.
CREATE TABLE IF NOT EXISTS private_msg (
  id    bigint unsigned NOT NULL AUTO_INCREMENT,
  skey  varchar(64)     NOT NULL,            -- the subscriber's key
  mid   bigint unsigned NOT NULL,            -- message id, 100 ns units since the Unix epoch
  ttl   bigint          NOT NULL,            -- unix time (seconds) at which the message expires
  msg   blob            NOT NULL,            -- the message JSON, at most 65535 bytes
  ctime timestamp       NOT NULL DEFAULT CURRENT_TIMESTAMP,
  mtime timestamp       NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (id),
  UNIQUE KEY ux_private_msg_skey_mid (skey, mid),
  KEY ix_private_msg_ttl (ttl)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
