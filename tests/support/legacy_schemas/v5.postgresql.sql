-- The database xl-hub's old runner left at 39a16f6 (postgresql).
-- Written by tests/support/legacy_schemas/freeze.py: the DDL those releases sent, as sent.

CREATE TABLE schema_version (
	version SERIAL NOT NULL, 
	description VARCHAR(200) NOT NULL, 
	applied_ms BIGINT NOT NULL, 
	PRIMARY KEY (version)
);

CREATE TABLE townships (
	code VARCHAR(2) NOT NULL, 
	name VARCHAR(64) NOT NULL, 
	PRIMARY KEY (code)
);

CREATE TABLE villages (
	id SERIAL NOT NULL, 
	township_code VARCHAR(2) NOT NULL, 
	name VARCHAR(64) NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_village_name UNIQUE (township_code, name), 
	FOREIGN KEY(township_code) REFERENCES townships (code)
);

CREATE TABLE groups (
	id VARCHAR(32) NOT NULL, 
	village_id INTEGER, 
	name VARCHAR(64), 
	leader_household VARCHAR(64), 
	PRIMARY KEY (id), 
	FOREIGN KEY(village_id) REFERENCES villages (id)
);

CREATE TABLE households (
	id VARCHAR(64) NOT NULL, 
	name VARCHAR(64), 
	village_id INTEGER NOT NULL, 
	group_id VARCHAR(32) NOT NULL, 
	lat FLOAT, 
	lon FLOAT, 
	phone VARCHAR(32), 
	armed_from VARCHAR(5) DEFAULT '22:00' NOT NULL, 
	armed_to VARCHAR(5) DEFAULT '06:00' NOT NULL, 
	created_ms BIGINT NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(village_id) REFERENCES villages (id), 
	FOREIGN KEY(group_id) REFERENCES groups (id)
);

CREATE INDEX ix_households_group_id ON households (group_id);

CREATE TABLE devices (
	id VARCHAR(20) NOT NULL, 
	household_id VARCHAR(64) NOT NULL, 
	cert_fingerprint VARCHAR(64), 
	cert_serial VARCHAR(40), 
	status VARCHAR(8) DEFAULT 'active' NOT NULL, 
	revoked_ms BIGINT, 
	revoked_reason VARCHAR(200), 
	agent_version VARCHAR(32), 
	online BOOLEAN DEFAULT '0' NOT NULL, 
	last_seen_ms BIGINT, 
	state_changed_ms BIGINT, 
	health_interval_s INTEGER DEFAULT '60' NOT NULL, 
	armed BOOLEAN, 
	created_ms BIGINT NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(household_id) REFERENCES households (id)
);

CREATE INDEX ix_devices_household_id ON devices (household_id);

CREATE TABLE events (
	id BIGSERIAL NOT NULL, 
	device_id VARCHAR(20) NOT NULL, 
	event_id BIGINT NOT NULL, 
	phase VARCHAR(8) NOT NULL, 
	kind VARCHAR(8) NOT NULL, 
	score INTEGER NOT NULL, 
	bbox JSON, 
	zone VARCHAR(24), 
	count INTEGER, 
	has_snapshot BOOLEAN NOT NULL, 
	duration_s INTEGER, 
	device_time_ms BIGINT NOT NULL, 
	received_ms BIGINT NOT NULL, 
	time_ms BIGINT NOT NULL, 
	time_trusted BOOLEAN NOT NULL, 
	household_id VARCHAR(64), 
	PRIMARY KEY (id), 
	CONSTRAINT uq_event_phase UNIQUE (device_id, event_id, phase)
);

CREATE INDEX ix_events_time ON events (time_ms);

CREATE TABLE snapshots (
	id BIGSERIAL NOT NULL, 
	device_id VARCHAR(20) NOT NULL, 
	event_id BIGINT NOT NULL, 
	phase VARCHAR(8) NOT NULL, 
	device_time_ms BIGINT NOT NULL, 
	received_ms BIGINT NOT NULL, 
	width INTEGER NOT NULL, 
	height INTEGER NOT NULL, 
	crop JSON, 
	box JSON, 
	jpeg BYTEA NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_snapshot_phase UNIQUE (device_id, event_id, phase)
);

CREATE TABLE health_latest (
	device_id VARCHAR(20) NOT NULL, 
	received_ms BIGINT NOT NULL, 
	device_time_ms BIGINT NOT NULL, 
	data JSON NOT NULL, 
	outbox_dropped BIGINT, 
	PRIMARY KEY (device_id)
);

CREATE TABLE health_history (
	device_id VARCHAR(20) NOT NULL, 
	bucket_ms BIGINT NOT NULL, 
	samples INTEGER NOT NULL, 
	temp_max FLOAT, 
	load_max FLOAT, 
	mem_min_mb BIGINT, 
	disk_min_mb BIGINT, 
	throttled_or BIGINT, 
	outbox_max BIGINT, 
	camera VARCHAR(16), 
	PRIMARY KEY (device_id, bucket_ms)
);

CREATE TABLE alerts (
	id VARCHAR(36) NOT NULL, 
	kind VARCHAR(8) NOT NULL, 
	origin_device VARCHAR(20) NOT NULL, 
	household_id VARCHAR(64) NOT NULL, 
	group_id VARCHAR(32) NOT NULL, 
	event_id BIGINT, 
	raised_ms BIGINT NOT NULL, 
	published_ms BIGINT, 
	status VARCHAR(8) NOT NULL, 
	closed_ms BIGINT, 
	close_reason VARCHAR(16), 
	first_ack_ms BIGINT, 
	first_ack_device VARCHAR(20), 
	response_ms BIGINT, 
	delay_s INTEGER, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_alerts_household_kind ON alerts (household_id, kind, raised_ms);

CREATE INDEX ix_alerts_status ON alerts (status);

CREATE TABLE alert_acks (
	alert_id VARCHAR(36) NOT NULL, 
	device_id VARCHAR(20) NOT NULL, 
	received_ms BIGINT NOT NULL, 
	device_time_ms BIGINT NOT NULL, 
	ok BOOLEAN NOT NULL, 
	PRIMARY KEY (alert_id, device_id)
);

CREATE TABLE alarms (
	id BIGSERIAL NOT NULL, 
	device_id VARCHAR(20) NOT NULL, 
	kind VARCHAR(24) NOT NULL, 
	detail VARCHAR(200), 
	raised_ms BIGINT NOT NULL, 
	cleared_ms BIGINT, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_alarms_open ON alarms (device_id, kind, cleared_ms);

CREATE TABLE commands (
	id VARCHAR(36) NOT NULL, 
	device_id VARCHAR(20) NOT NULL, 
	op VARCHAR(16), 
	args JSON, 
	sent_ms BIGINT, 
	ack_ms BIGINT, 
	ok BOOLEAN, 
	error VARCHAR(200), 
	PRIMARY KEY (id)
);

CREATE TABLE rejections (
	reason VARCHAR(32) NOT NULL, 
	count BIGINT NOT NULL, 
	last_ms BIGINT NOT NULL, 
	last_topic VARCHAR(120), 
	last_detail VARCHAR(200), 
	PRIMARY KEY (reason)
);

DROP INDEX IF EXISTS ix_events_household_time;

CREATE TABLE forward_sinks (
	sink VARCHAR(32) NOT NULL, 
	next_seq BIGINT DEFAULT '1' NOT NULL, 
	PRIMARY KEY (sink)
);

CREATE TABLE forward_leases (
	sink VARCHAR(32) NOT NULL, 
	owner VARCHAR(64), 
	until_ms BIGINT DEFAULT '0' NOT NULL, 
	PRIMARY KEY (sink)
);

CREATE TABLE forward_outbox (
	id BIGSERIAL NOT NULL, 
	sink VARCHAR(32) NOT NULL, 
	seq BIGINT NOT NULL, 
	item_key VARCHAR(96) NOT NULL, 
	item_type VARCHAR(8) NOT NULL, 
	payload TEXT NOT NULL, 
	state VARCHAR(8) DEFAULT 'pending' NOT NULL, 
	created_ms BIGINT NOT NULL, 
	age_from_ms BIGINT NOT NULL, 
	attempts INTEGER DEFAULT '0' NOT NULL, 
	next_attempt_ms BIGINT NOT NULL, 
	last_attempt_ms BIGINT, 
	last_error VARCHAR(500), 
	done_ms BIGINT, 
	dead_ms BIGINT, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_forward_sink_seq UNIQUE (sink, seq), 
	CONSTRAINT uq_forward_sink_key UNIQUE (sink, item_key)
);

CREATE INDEX ix_forward_sink_state_seq ON forward_outbox (sink, state, seq);

CREATE TABLE console_users (
	name VARCHAR(32) NOT NULL, 
	role VARCHAR(8) NOT NULL, 
	password_hash VARCHAR(200) NOT NULL, 
	disabled BOOLEAN DEFAULT '0' NOT NULL, 
	created_ms BIGINT NOT NULL, 
	last_login_ms BIGINT, 
	PRIMARY KEY (name)
);

CREATE TABLE console_sessions (
	token_hash VARCHAR(64) NOT NULL, 
	user_name VARCHAR(32) NOT NULL, 
	csrf VARCHAR(64) NOT NULL, 
	created_ms BIGINT NOT NULL, 
	expires_ms BIGINT NOT NULL, 
	ip VARCHAR(64), 
	PRIMARY KEY (token_hash)
);

CREATE INDEX ix_console_sessions_user_name ON console_sessions (user_name);

CREATE TABLE console_login_failures (
	key VARCHAR(100) NOT NULL, 
	failures INTEGER NOT NULL, 
	window_start_ms BIGINT NOT NULL, 
	locked_until_ms BIGINT, 
	PRIMARY KEY (key)
);

CREATE TABLE console_alarm_acks (
	alarm_id BIGSERIAL NOT NULL, 
	user_name VARCHAR(32) NOT NULL, 
	ack_ms BIGINT NOT NULL, 
	PRIMARY KEY (alarm_id)
);

CREATE TABLE console_audit (
	id BIGSERIAL NOT NULL, 
	at_ms BIGINT NOT NULL, 
	user_name VARCHAR(32), 
	action VARCHAR(24) NOT NULL, 
	target VARCHAR(64), 
	detail VARCHAR(200), 
	PRIMARY KEY (id)
);

CREATE INDEX ix_console_audit_at ON console_audit (at_ms);

INSERT INTO schema_version (version, description, applied_ms) VALUES (1, 'registry: townships, villages, groups, households, devices', 1764115200000);

INSERT INTO schema_version (version, description, applied_ms) VALUES (2, 'hub operations: events, snapshots, health, alerts, alarms, commands, rejections', 1764115200000);

INSERT INTO schema_version (version, description, applied_ms) VALUES (3, 'events: drop the unused (household, time) index (ingest write cost)', 1764115200000);

INSERT INTO schema_version (version, description, applied_ms) VALUES (4, 'alerts: delay_s, how late the event behind an alert reached the hub', 1764115200000);

INSERT INTO schema_version (version, description, applied_ms) VALUES (5, 'snapshots: box, where the person is in the frame the picture was taken from', 1764115200000);

INSERT INTO schema_version (version, description, applied_ms) VALUES (100, 'forward: outbox, per-sink sequence counters, sender leases', 1764115200000);

INSERT INTO schema_version (version, description, applied_ms) VALUES (200, 'console: users, sessions, login throttling, alarm acks, audit', 1764115200000);
