-- The database xl-hub's old runner left at 7b9efff (sqlite).
-- Written by tests/support/legacy_schemas/freeze.py: the DDL those releases sent, as sent.

CREATE TABLE schema_version (
	version INTEGER NOT NULL, 
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
	id INTEGER NOT NULL, 
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

INSERT INTO schema_version (version, description, applied_ms) VALUES (1, 'registry: townships, villages, groups, households, devices', 1764115200000);
